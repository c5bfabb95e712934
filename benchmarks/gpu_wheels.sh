#!/usr/bin/env bash
# The Python packages benchmarks/gpu.py needs that the GPU machine lacks (its own torch, transformers,
# accelerate, peft, timm, pyarrow, pandas, scikit-learn ... are there: /work/.library/device/KINDS.md), as
# wheels for its Python 3.12 on x86-64, into .whl/ (git-ignored here: `echo /.whl/ >> .git/info/exclude`).
# The device tool carries .whl (carry: [".whl"]); benchmarks/gpu.py's docstring has the command to run there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
get() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_24_x86_64 -d .whl "$@"
}
# pydantic (the job spec and a trial's config) and what it needs beyond typing-extensions
get "pydantic==$(.venv/bin/python -c 'import pydantic; print(pydantic.VERSION)')"
get "pydantic-core==$(.venv/bin/python -c 'import pydantic_core; print(pydantic_core.__version__)')"
get annotated-types typing-inspection
# QLoRA's 4-bit weights, when the checkout has the qlora strategy
get "bitsandbytes>=0.46"
ls -la .whl && du -sh .whl
