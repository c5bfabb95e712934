"""Facts the explanation and how-to pages quote, read from where they are kept (docs/hooks.py puts them in).

    package_map()        every module of raytune_ft, one line each     the modules' docstrings (read, not imported)
    module_docstring(m)  a module's docstring                         raytune_ft.ewc, raytune_ft.internals, ...
    claim_seeds()        the seeds a claim needs, per strategies      analysis/stats.py (seeds_for_a_claim)
    standings()          what each leaderboard standing claims        report/leaderboard.py (CLAIMS)
    secret_names()       what submit never ships                      cluster/ship.py (SECRET_NAMES)
    include(path)        a benchmark's results file, as written       benchmarks/results/*.md
    measured(name)       the date a results file was measured         its "Measured: YYYY-MM-DD." line
    quickstart_wall()    the quickstart's measured wall time          benchmarks/results/quickstart.md
    job_file(path)       an example job spec, as a code block         jobs/*.yaml
"""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from gen_markdown import first_sentence, paragraphs, table, text


ROOT = Path(__file__).resolve().parent.parent


PACKAGE = ROOT / "raytune_ft"


def package_map() -> str:
    """Every module of raytune_ft with the first sentence of its docstring, folder by folder."""
    out = []
    folders = [PACKAGE] + sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    folders += sorted(p for f in folders[1:] for p in f.iterdir() if (p / "__init__.py").is_file())
    for folder in folders:
        rel = folder.relative_to(ROOT).as_posix()
        init = _module_doc(folder / "__init__.py")
        rows = []
        for path in sorted(folder.glob("*.py")):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            rows.append([f"`{path.name}`", text(first_sentence(_module_doc(path))) or "—"])
        out += [f"### `{rel}/`", text(init) if init and folder != PACKAGE else ""]
        if rows:
            out.append(table(["module", "what it is"], rows))
    return "\n\n".join(part for part in out if part)


def _module_doc(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    return " ".join((doc or "").split("\n\n")[0].split())


def claim_seeds() -> str:
    from raytune_ft.analysis.stats import seeds_for_a_claim

    counts = range(2, 9)
    return table(["strategies compared"] + [str(k) for k in counts],
                 [["seeds any claim needs"] + [str(seeds_for_a_claim(k)) for k in counts]])


def standings() -> str:
    """What each standing of the confirmed leaderboard claims, in the words the leaderboard uses."""
    from raytune_ft.report.leaderboard import CLAIMS

    return table(["standing (vs best)", "what it claims"], [[f"`{s}`", text(c)] for s, c in CLAIMS.items()])


def secret_names() -> str:
    """The names `submit` never ships (raytune_ft/cluster/ship.py, SECRET_NAMES)."""
    from raytune_ft.cluster.ship import SECRET_NAMES

    return ", ".join(f"`{name}`" for name in SECRET_NAMES) + "."


def module_docstring(name: str) -> str:
    """A module's docstring (raytune_ft.ewc, ...) as Markdown: what the code says about itself."""
    import importlib

    return paragraphs(inspect.cleandoc(importlib.import_module(name).__doc__ or ""))


RESULTS = ROOT / "benchmarks" / "results"


def measured(name: str) -> str:
    """The date a benchmark's results file says it was measured, "2026-11-24" (benchmarks/_bench.py writes it)."""
    path = RESULTS / f"{name}.md"
    found = re.search(r"^Measured: (\d{4}-\d\d-\d\d)\.$", path.read_text(), re.M) if path.is_file() else None
    if not found:
        raise ValueError(f"benchmarks/results/{name}.md: no 'Measured: YYYY-MM-DD.' line under its title")
    return found.group(1)


def include(rel: str) -> str:
    """A results file (benchmarks/results/X.md) as it is, its headings moved two levels down under the page's."""
    path = (ROOT / rel).resolve()
    if path.parent != RESULTS or not path.is_file():
        raise ValueError(f"include: {rel} is not a file of benchmarks/results/")
    measured(path.stem)
    return re.sub(r"^#", "###", path.read_text(), flags=re.M)


def quickstart_wall() -> str:
    """The quickstart's measured wall time, as benchmarks/results/quickstart.md states it (e.g. "262 s")."""
    found = re.search(r"^\| quickstart wall time \| \*\*(\d[\d,]* s)\*\*", (ROOT / "benchmarks" / "results" /
                      "quickstart.md").read_text(), re.M)
    if not found:
        raise ValueError("benchmarks/results/quickstart.md has no '| quickstart wall time | **N s**' row")
    return found.group(1)


def job_file(rel: str) -> str:
    """An example job of jobs/ as a YAML code block, exactly as the file is."""
    path = (ROOT / rel).resolve()
    if path.parent != ROOT / "jobs" or path.suffix != ".yaml":
        raise ValueError(f"file: {rel} is not a job of jobs/")
    return "```yaml\n" + path.read_text().rstrip("\n") + "\n```"
