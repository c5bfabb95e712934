"""mkdocs hooks (mkdocs.yml `hooks:`): what can drift is never written in a page, the build writes it.

A page says where generated content goes with a marker, and the build replaces the marker:

    <!-- generated: strategies -->                    a page of gen_reference.py, or a fact of gen_facts.py
    <!-- include: benchmarks/results/quickstart.md --> a benchmark's results file, as the script wrote it
    <!-- measured: quickstart -->                     that file's date ("2026-11-24")
    <!-- docstring: raytune_ft.ewc -->                  a module's own docstring, as Markdown
    <!-- file: jobs/quickstart.yaml -->                 an example job, as a code block

On GitHub the markers are invisible and a page shows its hand-written part, which names the source.
An unknown marker, a results file without its date line, or code that fails fails the build.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_facts  # noqa: E402  (docs/gen_*.py, beside this file)
import gen_reference  # noqa: E402

GENERATORS = {
    # the reference pages
    "job_spec": gen_reference.job_spec, "strategies": gen_reference.strategies, "sources": gen_reference.sources,
    "cli": gen_reference.cli, "tables": gen_reference.tables, "run_folder": gen_reference.run_folder,
    "versions": gen_reference.versions,
    # facts the other pages quote
    "package_map": gen_facts.package_map, "claim_seeds": gen_facts.claim_seeds, "standings": gen_facts.standings,
    "secret_names": gen_facts.secret_names, "quickstart_wall": gen_facts.quickstart_wall,
}
MARKERS = {"include": gen_facts.include, "measured": gen_facts.measured, "docstring": gen_facts.module_docstring,
           "file": gen_facts.job_file}
MARKER = re.compile(r"<!-- (generated|include|measured|docstring|file): ([\w./-]+) -->")


def expand(markdown: str) -> str:
    def replace(match):
        kind, name = match.groups()
        if kind != "generated":
            return MARKERS[kind](name)
        if name not in GENERATORS:
            raise ValueError(f"no generator {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):
    try:
        return expand(markdown)
    except Exception as e:  # a marker, or the code a page is generated from, failed: say which page
        raise PluginError(f"{page.file.src_uri}: {type(e).__name__}: {e}") from e
