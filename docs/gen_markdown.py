"""Markdown from the code's own words: docstrings and descriptions turned into paragraphs, lists, tables.

Code spans are kept; the rest is escaped, so `<run>` stays text and `*` no emphasis.
"""
from __future__ import annotations

import inspect
import re
import textwrap


def text(value: str | None) -> str:
    """Prose for a table cell or a paragraph: code spans kept, the rest escaped (`<run>` would be HTML,
    `*` emphasis, `|` a new cell); one line."""
    parts = re.split(r"(`[^`]*`)", " ".join((value or "").split()))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part)  # a table keeps a code span's | in its cell
        else:
            out.append(part.replace("\\", "\\\\").replace("*", "\\*").replace("<", "&lt;").replace(">", "&gt;")
                       .replace("|", "\\|").replace("_", "\\_"))
    return "".join(out)


def docstring(obj) -> str:
    """An object's own docstring (not inherited), as paragraphs of Markdown; a docstring's indented
    block (an example) becomes a code block."""
    raw = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return paragraphs(inspect.cleandoc(raw)) if raw else ""


def paragraphs(doc: str) -> str:
    """Plain-text docstring -> Markdown: indented runs become code blocks, `- ` lists stay lists, tables
    (lines starting with `|`) stay as they are, other lines are joined into paragraphs and escaped."""
    blocks, para, code, items, rows = [], [], [], [], []

    def flush():
        if rows:  # a Markdown table in the docstring: as it is
            blocks.append("\n".join(rows))
            rows.clear()
        if para:
            blocks.append(text(" ".join(para)))
            para.clear()
        if items:
            blocks.append("\n".join(f"- {text(i)}" for i in items))
            items.clear()
        if code:
            while code and not code[-1].strip():
                code.pop()
            blocks.append("```\n" + textwrap.dedent("\n".join(code)).strip("\n") + "\n```")
            code.clear()

    for line in doc.splitlines():
        if line.startswith("|"):
            if not rows:
                flush()
            rows.append(line)
            continue
        if rows:
            flush()
        if line.startswith("    ") or (code and not line.strip()):
            if para or items:
                flush()
            code.append(line)
        elif not line.strip():
            flush()
        elif line.startswith("- "):
            if para or code:
                flush()
            items.append(line[2:])
        elif items and line.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            if code or items:
                flush()
            para.append(line.strip())
    flush()
    return "\n\n".join(blocks)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def first_sentence(doc: str) -> str:
    """Up to the first full stop that ends a sentence ("Kumar et al. 2022" and "e.g." do not)."""
    doc = " ".join(doc.split())
    for stop in re.finditer(r"\.(?=\s|$)", doc):
        word = doc[:stop.start()].rsplit(" ", 1)[-1]
        if word not in ("al", "e.g", "i.e", "etc", "vs", "cf"):
            return doc[:stop.start()]
    return doc


# --------------------------------------------------------------------------- pydantic models -> tables
