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

MARKER = re.compile(r"<!-- (generated|include|measured|docstring): ([\w./-]+) -->")


def expand(markdown: str) -> str:
    def replace(match):
        kind, name = match.groups()
        if kind == "include":
            return reference.include(name)
        if kind == "measured":
            return reference.measured(name)
        if kind == "docstring":
            return reference.module_docstring(name)
        if name not in reference.GENERATORS:
            raise ValueError(f"no generator {name!r}; known: {', '.join(reference.GENERATORS)}")
        return reference.GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):
    try:
        return expand(markdown)
    except Exception as e:  # a marker, or the code a page is generated from, failed: say which page
        raise PluginError(f"{page.file.src_uri}: {type(e).__name__}: {e}") from e
