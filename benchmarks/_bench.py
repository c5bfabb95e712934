"""What every benchmark script shares: the repository root on sys.path, and printing + writing its table."""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Every results file says when it was measured, once, on the line after its title: the docs and the README
# quote it from there (docs/hooks.py), never a date of their own.
MEASURED = "Measured: "


def publish(lines: list[str], name: str) -> None:
    """Print the table and write it to benchmarks/results/<name>.md, dated (UTC) under its title."""
    title, rest = (lines[:1], lines[1:]) if lines and lines[0].startswith("# ") else ([], lines)
    text = "\n".join([*title, "", f"{MEASURED}{time.strftime('%Y-%m-%d', time.gmtime())}.", *rest])
    print(text)
    out = ROOT / "benchmarks" / "results" / f"{name}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")
