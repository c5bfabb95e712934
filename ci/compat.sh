#!/usr/bin/env bash
# The compatibility pass (issue 23): the oldest supported Ray, torch, torchvision, transformers, accelerate
# and peft (ci/floor-constraints.txt, pyproject.toml's floors) in a second virtual environment, .venv-floor,
# with the unit tests and the Ray end-to-end tests that matter. Ray there is not a release the fast path
# was tested on (raytune_ft/internals.py), so every trial runs Ray's documented TorchTrainer path.
#
#   bash ci/compat.sh            # from the repository root; the README's test command ends with it
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-floor
.venv-floor/bin/pip install -q -e '.[test]' -c ci/floor-constraints.txt
.venv-floor/bin/python - <<'PY'
import ray, torch, transformers, accelerate, peft
print(f"compatibility pass: ray {ray.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"accelerate {accelerate.__version__}, peft {peft.__version__}")
PY
# the unit tests, then a sweep with ASHA, resume after SIGKILL, a two-worker trial, bucket storage (a real
# two-node cluster and an S3 API on loopback), and submit's / run --address's version check against a real cluster
.venv-floor/bin/python -m pytest -q -m "not ray" -p no:cacheprovider
.venv-floor/bin/python -m pytest -q -p no:cacheprovider \
    "tests/test_e2e_ray.py::test_asha_sweep_finishes_and_frees_everything" \
    "tests/test_e2e_ray.py::test_sigkilled_sweep_resumes_without_rerunning_finished_trials" \
    "tests/test_e2e_ray.py::test_two_workers_per_trial" \
    tests/test_s3_storage.py \
    "tests/test_cluster.py::test_a_cluster_of_another_ray_is_refused_before_anything_is_shipped"
