"""Memory of a training step on CPU, for tests and benchmarks: the peak of the tensors torch's CPU allocator
holds while `fn` runs, above what it held before, summed from torch.profiler's memory events (each op's own
allocations and frees, and the frees between ops, in time order). Deterministic for a given model and batch,
unlike the process's resident set (which the allocator's caching blurs)."""
from __future__ import annotations


def peak_tensor_bytes(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    held = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak
