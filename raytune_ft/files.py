"""Writing a file so that a reader, or a crash, never sees half of it: the one place for it."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing(path) -> Iterator[Path]:
    """A temporary path beside `path`; write it in the block, and it replaces `path` in one rename when
    the block ends (nothing is replaced, and the temporary file is removed, if the block raises).

        with replacing(run / "trials.parquet") as tmp:
            pq.write_table(table, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    """`path.write_text(text)`, atomically (see `replacing`)."""
    with replacing(path) as tmp:
        tmp.write_text(text)
