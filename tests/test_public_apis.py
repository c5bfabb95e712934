"""raytune_ft uses the public APIs of Ray, Accelerate, torch (and the other libraries it builds on) outside
one module, raytune_ft/internals.py, whose every internal is used only on the versions it was tested on,
with a public path beside it (issue 23)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "raytune_ft"
THE_ONE_MODULE = PACKAGE / "internals.py"
LIBRARIES = r"(?:ray|torch|torchvision|accelerate|transformers|peft|nn|tune|train)\b"
PRIVATE = [
    # what the lead's check looks for, and more
    r"ray\._private", r"ray\._raylet", r"\._internal\b", r"_local_tuner", r"_reset_state",
    r"_TorchBackend", r"_NormBase", r"_inter_actor_queue", r"_initialize_and_run_controller",
    r"_create_default_callbacks", r"ENABLE_RAY_CLUSTER\b", r"AcceleratorState\._", r"PartialState\._",
    # a private name imported from a library: from ray.x import _Y / from torch.x import y, _z
    rf"from {LIBRARIES}[\w.]* import [^\n]*\b_[A-Za-z]\w*",
    # import ray._x / import torch.nn._x
    rf"import {LIBRARIES}(?:\.\w+)*\._\w+",
    # a private attribute of a library's module or class: torch.nn.modules.batchnorm._NormBase, ray._x
    rf"\b{LIBRARIES}(?:\.[A-Za-z]\w*)*\._[A-Za-z]\w*",
    # a private keyword of ray.init (ray.init(_node_ip_address=...))
    r"ray\.init\((?:[^()]|\([^()]*\))*?\b_\w+\s*=",
    # a private attribute of a library's object: a Train session's, a Tuner's, a trainer's
    r"\b(?:session|tuner|trainer|controller|accelerator|ctx|context)\._[a-z]\w*",
]


def _sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def private_uses(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    for pattern in PRIVATE:
        for m in re.finditer(pattern, text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0).strip()[:80]}")
    return found


def test_no_private_name_of_a_library_outside_the_one_module():
    outside = [hit for path in _sources() if path != THE_ONE_MODULE for hit in private_uses(path)]
    assert outside == [], "private names of Ray / Accelerate / torch outside raytune_ft/internals.py:\n" + \
        "\n".join(outside)


def test_the_checks_would_catch_what_was_there_before():
    """The patterns find each private use the review counted (issue 23), written as it was."""
    before = [
        "from ray.train._internal.session import get_session",
        "session._inter_actor_queue = _LocalQueue()",
        "from ray.train.torch.config import _TorchBackend",
        "from ray.train.v2._internal.execution.controller import TrainController",
        "tuner._local_tuner.get_run_config().callbacks = callbacks",
        "from ray._raylet import PlacementGroupID",
        "import ray._private.ray_constants as ray_constants",
        "ray_constants.ENABLE_RAY_CLUSTER = False",
        "AcceleratorState._reset_state()",
        "return (nn.modules.batchnorm._NormBase, nn.LayerNorm)",
        'ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=2)',
    ]
    for line in before:
        assert any(re.search(p, line) for p in PRIVATE), line
    assert private_uses(THE_ONE_MODULE), "internals.py holds the internals: the patterns must find them there"


def test_the_fast_path_is_on_only_on_a_tested_ray_and_not_when_asked_off(monkeypatch):
    import ray

    from raytune_ft import internals

    monkeypatch.delenv(internals.FAST_PATH_ENV, raising=False)
    monkeypatch.setattr(ray, "__version__", internals.TESTED_RAY[0])
    assert internals.fast_path()
    monkeypatch.setenv(internals.FAST_PATH_ENV, "0")
    assert not internals.fast_path()
    from ray.train.torch import TorchTrainer

    assert internals.trainer_cls() is TorchTrainer  # Ray's own, as its guide builds it
    monkeypatch.delenv(internals.FAST_PATH_ENV)
    monkeypatch.setattr(ray, "__version__", "2.99.0")  # a release the internals were never tested on
    assert not internals.fast_path() and internals.trainer_cls() is TorchTrainer


@pytest.mark.parametrize("name", ["raytune_ft/cluster/versions.py", "raytune_ft/sweep/ray_setup.py"])
def test_the_supported_range_is_written_once(name):
    """The Ray range in the error messages is pyproject.toml's."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_range = next(d for d in deps if d.startswith("ray[")).split("]", 1)[1]
    from raytune_ft.cluster.versions import SUPPORTED_RAY

    assert SUPPORTED_RAY == ray_range
    assert (ROOT / name).exists()
