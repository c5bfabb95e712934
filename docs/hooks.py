"""mkdocs hooks (mkdocs.yml `hooks:`): what can drift is never written in a page, the build writes it.

A page says where generated content goes with a marker, and the build replaces the marker:

    <!-- generated: strategies -->                    docs/reference.py's strategies(): from the code
    <!-- include: benchmarks/results/quickstart.md --> a benchmark's results file, as the script wrote it
    <!-- measured: quickstart -->                     that file's date ("Measured: 2026-11-24.")
    <!-- docstring: raytune_ft.ewc -->                  a module's own docstring, as Markdown

On GitHub the markers are invisible and the page shows its hand-written part, which names the source.
An unknown marker, or a results file without its date line, fails the build.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # noqa: E402  (docs/reference.py, beside this file)

ROOT = reference.ROOT
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!-- (generated|include|measured|docstring): ([\w./-]+) -->")
MEASURED = re.compile(r"^Measured: (\d{4}-\d\d-\d\d)\.$", re.M)


def measured(name: str) -> str:
    """The date a benchmark's results file says it was measured (benchmarks/_bench.py writes it)."""
    path = RESULTS / f"{name}.md"
    found = MEASURED.search(path.read_text()) if path.is_file() else None
    if not found:
        raise PluginError(f"{path.relative_to(ROOT)}: no 'Measured: YYYY-MM-DD.' line under its title")
    return found.group(1)


def include(rel: str) -> str:
    """A results file with its headings moved two levels down, under the page's own."""
    path = (ROOT / rel).resolve()
    if path.parent != RESULTS or not path.is_file():
        raise PluginError(f"include: {rel} is not a file of benchmarks/results/")
    measured(path.stem)
    return re.sub(r"^#", "###", path.read_text(), flags=re.M)


def expand(markdown: str) -> str:
    def replace(match):
        kind, name = match.groups()
        if kind == "include":
            return include(name)
        if kind == "measured":
            return measured(name)
        if kind == "docstring":
            return reference.module_docstring(name)
        if name not in reference.GENERATORS:
            raise PluginError(f"no generator {name!r}; known: {', '.join(reference.GENERATORS)}")
        return reference.GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):
    try:
        return expand(markdown)
    except PluginError:
        raise
    except Exception as e:  # the code the page is generated from failed: say which page
        raise PluginError(f"{page.file.src_uri}: {type(e).__name__}: {e}") from e
