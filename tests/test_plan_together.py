"""The calibration's processes side by side (plan/together.py): a wave's rendezvous, a process that fails
holding no one up, the devices each process sees. No training: threads stand in for the processes, and the
failing processes fail before any model is made."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from raytune_ft.plan.together import Sync, devices, mark, side_by_side


def test_a_wave_starts_timing_together_and_trains_on_until_all_are_done(tmp_path):
    started, steps = {}, {"ballast": 0}

    def member(index: int, delay: float, ballast: bool = False) -> None:
        sync = Sync({"dir": str(tmp_path), "index": index, "size": 3, "measuring": 2, "ballast": ballast})
        time.sleep(delay)  # its set-up
        sync.ready()
        started[index] = time.monotonic()
        if not ballast:
            time.sleep(0.1 * index)  # its measurement
        sync.done()
        if ballast:
            sync.carry_on(lambda: (steps.__setitem__("ballast", steps["ballast"] + 1), time.sleep(0.01)))

    threads = [threading.Thread(target=member, args=args) for args in ((0, 0.0), (1, 0.3), (2, 0.1, True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert max(started.values()) - min(started.values()) < 0.1  # none timed before the slowest had set up
    assert steps["ballast"] > 0 and len(list(tmp_path.glob("*.done"))) == 2  # a ballast is never counted done


def test_a_member_that_ended_is_waited_on_no_more(tmp_path):
    sync = Sync({"dir": str(tmp_path), "index": 0, "size": 2, "measuring": 2})
    mark(tmp_path, 1, "ready")  # what side_by_side marks for a process that has exited
    mark(tmp_path, 1, "done")
    clock = time.monotonic()
    sync.ready()
    sync.done()
    sync.carry_on(lambda: None)
    assert time.monotonic() - clock < 1.0
    Sync(None).ready()  # alone (a Ray task): nothing to wait for


def test_a_process_that_crashes_is_said_and_does_not_hold_its_wave():
    bad = {"job": {}, "data_dir": "/nonexistent", "points": [[{"name": "full"}, {}, {}]]}
    crash = {**bad, "points": [[{"name": "lora"}, {}, {}, "a fourth part: the process ends with an error"]]}
    clock = time.monotonic()
    rows = side_by_side([bad, crash], 2, SimpleNamespace(gpus_per_worker=0))
    assert time.monotonic() - clock < 60
    assert {r["strategy"] for r in rows} == {"full", "lora"} and all(r["error"] for r in rows)
    assert "ended with code 1" in next(r for r in rows if r["strategy"] == "lora")["error"]


def test_each_process_sees_its_own_gpus_or_its_share_of_one():
    assert devices(0, 0, 4) is None
    assert [devices(i, 1, 2) for i in range(3)] == ["0", "1", "0"]
    assert [devices(i, 2, 4) for i in range(2)] == ["0,1", "2,3"]
    assert [devices(i, 0.5, 1) for i in range(2)] == ["0", "0"]


def test_an_fsdp_trial_is_calibrated_as_one_worker(tiny_bert, text_csvs, tmp_path):
    """resources.distributed: fsdp over 2 workers: the calibration's lone process trains the whole model (no
    process group to shard over); the memory model splits the weights' parts (plan/memory.py)."""
    from raytune_ft.plan.calibrate import measure_all, requests
    from raytune_ft.plan.memory import shards
    from raytune_ft.prepare import prepare_job
    from raytune_ft.spec import parse_job
    from tests.conftest import text_spec

    spec = text_spec(tiny_bert, text_csvs, output_dir=str(tmp_path / "runs"))
    spec["resources"] = {"workers_per_trial": 2, "distributed": "fsdp"}
    spec["strategies"] = [{"name": "full"}]
    job = parse_job(spec)
    prepare_job(job, tmp_path / "data")
    (request,) = requests(job, tmp_path / "data")
    rows = measure_all(request)
    assert rows and not rows[0].get("error"), rows
    assert rows[0]["parameters_mb"] > 0 and shards(job) == 2
