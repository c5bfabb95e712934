"""The documentation: the site builds with `mkdocs build --strict`, its reference pages name everything the code
defines (every registered strategy and source, every spec field, command and table column), and the README
says only what the repository holds (its commands are CI's, its numbers and tree come from the files they
describe).

The build runs once for the module (~10 s); it is skipped, saying why, only when mkdocs is not installed
(`pip install -e '.[docs]'`; the test extra brings it).
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import typing

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def load_docs_module(name: str):
    """docs/<name>.py, imported under a name of its own (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return module


reference, facts = load_docs_module("gen_reference"), load_docs_module("gen_facts")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site's folder: mkdocs build --strict, as CI builds it."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs / mkdocs-material not installed: pip install -e '.[docs]' to build the site")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}  # this checkout's raytune_ft
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def page(site, name: str) -> str:
    return (site / name / "index.html").read_text()


def codes(html: str) -> set[str]:
    """Every <code> text of a page."""
    return {re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<code>(.*?)</code>", html, re.S)}


# --------------------------------------------------------------------------- the site


def test_every_strategy_and_source_has_its_section(site):
    from raytune_ft.data import DATA_SOURCES
    from raytune_ft.data.config import DataConfig
    from raytune_ft.models import SOURCES
    from raytune_ft.models.base import ModelConfig
    from raytune_ft.strategies import STRATEGIES
    from raytune_ft.strategies.base import StrategyConfig

    strategies, sources = page(site, "reference/strategies"), page(site, "reference/sources")
    assert [n for n in STRATEGIES.names() if f'id="{n}"' not in strategies] == []
    assert [n for n in [*SOURCES.names(), *DATA_SOURCES.names()] if f'id="{n}"' not in sources] == []
    # and each entry's own fields (those every entry shares are on the job spec's page: the next test)
    for registry, html, common in ((STRATEGIES, strategies, StrategyConfig.model_fields),
                                   (SOURCES, sources, ModelConfig.model_fields),
                                   (DATA_SOURCES, sources, DataConfig.model_fields)):
        for name, entry in registry.items():
            missing = set(entry.Config.model_fields) - set(common) - codes(html)
            assert not missing, f"{name}: {missing} not on its reference page"


def test_every_field_of_the_spec_is_on_the_job_spec_page(site):
    from pydantic import BaseModel

    from raytune_ft.data.config import DataConfig
    from raytune_ft.models.base import ModelConfig
    from raytune_ft.spec.job import JobSpec
    from raytune_ft.strategies.base import StrategyConfig

    shown = codes(page(site, "reference/job-spec"))

    def walk(model, path=""):
        for name, field in model.model_fields.items():
            yield model, f"{path}{name}", name
            nested = [k for k in (field.annotation, *typing.get_args(field.annotation))
                      if isinstance(k, type) and issubclass(k, BaseModel)]
            if len(nested) == 1:
                yield from walk(nested[0], f"{path}{name}.")

    fields = [*walk(JobSpec), *walk(ModelConfig, "model."), *walk(DataConfig, "data."),
              *walk(StrategyConfig, "strategies[].")]
    assert [path for _, path, name in fields if name not in shown] == []
    # each section has its heading (`training.augment`, `search.confirm`, ...)
    assert [path for path, _ in reference.sections(JobSpec) if path not in shown] == []


def test_every_command_and_table_column_is_on_its_page(site):
    import typer

    from raytune_ft.cli import app
    from raytune_ft.results.schema import TABLES

    group = typer.main.get_command(app)
    commands = group.list_commands(group.make_context("raytune-ft", [], resilient_parsing=True))
    assert len(commands) > 5
    cli = page(site, "reference/cli")
    assert [c for c in commands if f'id="raytune-ft-{c}"' not in cli] == []
    tables = codes(page(site, "reference/tables"))
    assert [f"{t}.{c}" for t, cols in TABLES.items() for c, _, _ in cols if c not in tables] == []
    assert {f"{t}.parquet" for t in TABLES} <= tables


def test_no_marker_is_left_and_nothing_loads_from_outside(site):
    for html_file in site.rglob("*.html"):
        html = html_file.read_text()
        name = html_file.relative_to(site)
        assert not re.search(r"<!-- (generated|include|measured|docstring|file):", html), name
        # offline: no web fonts, scripts or styles fetched from elsewhere (links to read are fine)
        loads = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?:[^"]+)"', html)
        assert loads == [], f"{name} loads {loads}"


def test_the_benchmark_page_includes_every_results_file_under_its_date(site):
    source = (ROOT / "docs" / "explanation" / "benchmarks.md").read_text()
    included = set(re.findall(r"<!-- include: benchmarks/results/([\w-]+)\.md -->", source))
    assert included == {p.stem for p in (ROOT / "benchmarks" / "results").glob("*.md")}
    html = page(site, "explanation/benchmarks")
    assert html.count("Measured: ") == len(included)


# --------------------------------------------------------------------------- what the pages are made of


def test_every_spec_field_has_a_description():
    """The reference is generated from the descriptions: a field without one would be a blank cell."""
    from raytune_ft.spec.job import JobSpec

    schema = JobSpec.model_json_schema()
    models = {"JobSpec": schema, **schema["$defs"]}
    bare = [f"{model}.{field}" for model, s in models.items() for field, prop in s.get("properties", {}).items()
            if not prop.get("description") and field not in ("name", "source", "hparams")
            and not (model == "JobSpec" and field == "name")]
    assert bare == [], f"fields without a description (Field(..., description=...)): {bare}"


def test_every_results_file_is_dated_once_under_its_title():
    for results in (ROOT / "benchmarks" / "results").glob("*.md"):
        lines = results.read_text().splitlines()
        assert lines[0].startswith("# "), results.name
        assert len([line for line in lines if line.startswith("Measured: ")]) == 1, results.name
        assert re.fullmatch(r"Measured: \d{4}-\d\d-\d\d\.", lines[2]), results.name


def test_the_layout_tree_names_what_the_layout_knows():
    """layout.py's docstring tree (the README's and the docs' run folder) and RunLayout name the same files."""
    from pathlib import Path

    from raytune_ft.layout import RESULT_FILES, RunLayout

    layout = RunLayout(Path("R"))
    known = set()
    for name in dir(RunLayout):
        value = getattr(layout, name)
        if isinstance(value, Path) and value != layout.root:
            known.add(value.relative_to(layout.root).parts[0])
    known |= {layout.trial("x").parts[1], layout.report("x").parts[1]}
    in_tree = {name.split("/")[0] for name in reference.layout_entries()}
    assert in_tree == known
    assert set(RESULT_FILES) <= in_tree


# --------------------------------------------------------------------------- the README


def test_the_readme_is_short_and_stays_inside_the_repository():
    assert len(README.encode()) < 10_000
    links = re.findall(r"\]\(([^)]+)\)", README)
    assert links and [link for link in links if not (ROOT / link.split("#")[0]).exists()] == []
    assert not re.search(r"https?://", README)
    assert not re.search(r"\bissue \d", README, re.I)


def test_the_readme_maps_every_page_of_the_docs():
    linked = {link.split("#")[0] for link in re.findall(r"\]\((docs/[^)]+\.md)[^)]*\)", README)}
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")} - {"docs/index.md"}
    assert linked == pages


def test_the_readme_test_command_is_what_ci_runs():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] in README.splitlines()
    assert ("python3 -m venv .venv && .venv/bin/pip install -e . -c constraints.txt && "
            ".venv/bin/raytune-ft run jobs/quickstart.yaml") in README.splitlines()


def test_the_readme_quotes_the_quickstart_benchmark_and_links_the_layout():
    assert f"**{facts.quickstart_wall()}**" in README
    assert f"measured {facts.measured('quickstart')}" in README
    assert "](docs/reference/run-folder.md)" in README  # the tree itself is generated there, not copied here


def test_the_readmes_tables_are_rows_of_benchmark_results_files():
    """The README quotes measured tables; each row must be in a results file as the benchmark wrote it."""
    results = "\n".join(p.read_text() for p in (ROOT / "benchmarks" / "results").glob("*.md")).splitlines()
    rows = [line for line in README.splitlines() if line.startswith("|")]
    assert rows and [row for row in rows if row not in results] == []


def test_pyproject_comments_name_files_that_exist():
    text = (ROOT / "pyproject.toml").read_text()
    named = set(re.findall(r"\b(?:[\w.-]+/)+[\w.-]+\.(?:py|txt|j2|md|sh|yaml|toml)\b", text))
    assert named and sorted(p for p in named if not (ROOT / p).exists()) == []
    project = tomllib.loads(text)["project"]
    assert project["license"] == "Apache-2.0" and (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    extras = project["optional-dependencies"]
    assert set(extras["docs"]) <= set(extras["test"])  # CI builds the site
