"""What every benchmark script shares: the repository root on sys.path, and printing + writing its table."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def publish(lines: list[str], name: str) -> None:
    """Print the table and write it to benchmarks/results/<name>.md."""
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / f"{name}.md"
    out.write_text(text + "\n")
    print(f"\nwritten to {out}")
