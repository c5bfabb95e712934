"""How prepared data lie on disk, and how a trial reads them without loading them whole.

Each split is one `.npy` file per column (`train.pixel_values.npy`, `train.labels.npy`, ...): NumPy's own
format, a small header and the rows one after another, readable by anything that reads NumPy.

    writer = SplitWriter(out_dir, "train", rows=n)      # preparation: the row count is known before decoding
    writer.add({"pixel_values": chunk, "labels": ys})   # chunk by chunk, straight to the file
    writer.close()                                      # every column complete, then renamed into place

    split = load_split(out_dir, "train")                # {"pixel_values": Column, "labels": tensor}
    split["pixel_values"][i]                            # one row, read from the file with pread

Why not memory mapping, Arrow or Ray Data: measured in benchmarks/data_scale.py. The rows of a split are
fixed-size (uint8 images of one size, token ids of one length), so row i is at a known offset and one
`pread` reads it; nothing else is held in memory. A memory-mapped file reads as fast, but every page an
epoch touches stays in the worker's resident set (a 20k-image epoch maps the whole file: RSS grows with
the data, which is what had to stop). Parquet shards through Ray Data would add a streaming executor,
its actors and object-store copies to every trial, on a 2-core machine where Ray's per-trial processes
already cost more than the training; the shuffled reads a trial needs are one pread each here.
Labels are small (8 bytes a row) and are loaded whole, as a tensor: subsets, class counts and
stratification need them all.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

LABELS = "labels"


def column_path(data_dir, split: str, column: str) -> Path:
    return Path(data_dir) / f"{split}.{column}.npy"


class SplitWriter:
    """Writes one split's columns chunk by chunk into `.npy` files of a row count known in advance.

    Each column goes to a hidden temporary file first; `close` checks every column got exactly `rows` rows
    and renames them into place, so a split is either complete or absent.
    """

    def __init__(self, out_dir, split: str, rows: int):
        self.out_dir, self.split, self.rows = Path(out_dir), split, rows
        self.files: dict[str, object] = {}
        self.written: dict[str, int] = {}

    def add(self, chunk: dict) -> None:
        """Append equally long arrays (NumPy arrays or torch tensors), one per column."""
        import numpy as np

        for column, values in chunk.items():
            values = np.ascontiguousarray(values.numpy() if hasattr(values, "numpy") else values)
            if column not in self.files:
                f = open(self._tmp(column), "wb")
                header = {"descr": np.lib.format.dtype_to_descr(values.dtype), "fortran_order": False,
                          "shape": (self.rows, *values.shape[1:])}
                np.lib.format.write_array_header_2_0(f, header)
                self.files[column], self.written[column] = f, 0
            if self.written[column] + len(values) > self.rows:
                raise ValueError(f"{self.split}.{column}: more than the {self.rows} rows announced")
            self.files[column].write(values.tobytes())
            self.written[column] += len(values)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        short = {c: n for c, n in self.written.items() if n != self.rows}
        if short:
            raise ValueError(f"{self.split}: columns {short} written, {self.rows} rows announced")
        for column in self.files:
            self._tmp(column).replace(column_path(self.out_dir, self.split, column))

    def _tmp(self, column: str) -> Path:
        return self.out_dir / f".{self.split}.{column}.npy.tmp"


class Column:
    """One prepared column, read row by row from its `.npy` file (never loaded whole).

    `column[i]` is row i as a tensor; `column[a:b]` or `column[indices]` a stacked batch; `len(column)`,
    `column.shape` and `column.dtype` as for a tensor. `take(indices)` is a view of some rows (a train-size
    subset) that reads only those. The file is opened in each process on first read (a DataLoader worker or
    a forked process gets its own descriptor).
    """

    def __init__(self, path, rows: Optional[list[int]] = None):
        import numpy as np

        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran:
            raise ValueError(f"{self.path}: a Fortran-ordered array; prepare the data again")
        self.np_dtype, self.row_shape = dtype, tuple(shape[1:])
        self.row_bytes = int(dtype.itemsize * np.prod(self.row_shape, dtype=np.int64))
        self.rows = rows  # None: every row of the file
        self.file_rows = shape[0]
        self._fd, self._pid = None, None

    def __len__(self) -> int:
        return self.file_rows if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple:
        return (len(self), *self.row_shape)

    @property
    def dtype(self):
        import torch

        return torch.from_numpy(self._empty(0)).dtype

    def take(self, indices) -> "Column":
        view = Column.__new__(Column)
        view.__dict__.update(self.__dict__)
        view.rows = [self._row(int(i)) for i in indices]
        view._fd, view._pid = None, None
        return view

    def __getitem__(self, key):
        import torch

        if isinstance(key, tuple):  # rows first, then within each row, as a tensor would: column[:, 0]
            rows = self[key[0]]
            batch = not isinstance(key[0], int) and not (hasattr(key[0], "ndim") and key[0].ndim == 0)
            return rows[(slice(None), *key[1:])] if batch else rows[key[1:]]
        if isinstance(key, slice):
            key = range(*key.indices(len(self)))
        if isinstance(key, (int,)) or (hasattr(key, "ndim") and key.ndim == 0):
            return torch.from_numpy(self._read(self._row(int(key)), 1)[0])
        rows = [self._row(int(i)) for i in key]
        out = self._empty(len(rows))
        for j, row in enumerate(rows):
            out[j] = self._read(row, 1)[0]
        return torch.from_numpy(out)

    def read(self):
        """The whole column as a tensor (for small splits and tests; a trial never needs it)."""
        return self[:]

    def _row(self, i: int) -> int:
        return file_row(i, len(self), self.rows)

    def _empty(self, n: int):
        import numpy as np

        return np.empty((n, *self.row_shape), dtype=self.np_dtype)

    def _read(self, row: int, n: int):
        import numpy as np

        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        buf = bytearray(n * self.row_bytes)
        got = os.preadv(self._fd, [buf], self.offset + row * self.row_bytes)
        if got != len(buf):
            raise OSError(f"{self.path}: row {row} is cut short (the file is truncated: prepare the data again)")
        return np.frombuffer(buf, dtype=self.np_dtype).reshape(n, *self.row_shape)

    def __getstate__(self):
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)


def load_split(data_dir, split: str) -> dict:
    """The prepared columns of one split: labels as a tensor, every other column as a `Column`.

    Data prepared before this format (one `<split>.pt` of tensors) load as they were written: memory-mapped.
    """
    import numpy as np
    import torch

    data_dir = Path(data_dir)
    legacy = data_dir / f"{split}.pt"
    if legacy.exists() and not column_path(data_dir, split, LABELS).exists():
        return torch.load(legacy, weights_only=True, mmap=True)
    files = sorted(data_dir.glob(f"{split}.*.npy"))
    if not files:
        raise FileNotFoundError(f"{data_dir}: no prepared {split} split")
    out = {}
    for path in files:
        column = path.name[len(split) + 1:-len(".npy")]
        out[column] = torch.from_numpy(np.load(path)) if column == LABELS else Column(path)
    return out


def subset(columns: dict, indices) -> dict:
    """Some rows of a loaded split (a train size's subset): labels indexed, the other columns as views."""
    import torch

    keep = torch.as_tensor(indices, dtype=torch.long)
    return {k: v.take(keep.tolist()) if isinstance(v, (Column, Joined)) else v[keep] for k, v in columns.items()}


def concat(first: dict, second: dict) -> dict:
    """Two loaded splits' rows one after the other (a train / validation split drawn anew from both): labels
    concatenated, the other columns joined as views that still read row by row."""
    import torch

    return {k: torch.cat([v, second[k]]) if isinstance(v, torch.Tensor) else Joined([v, second[k]])
            for k, v in first.items()}


class Joined:
    """The rows of several columns of one row shape, one after the other, read as one `Column` is."""

    def __init__(self, parts: list, rows: Optional[list[int]] = None):
        self.parts, self.rows = parts, rows
        self.starts = [sum(len(p) for p in parts[:i]) for i in range(len(parts) + 1)]

    def __len__(self) -> int:
        return self.starts[-1] if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple:
        return (len(self), *self.parts[0].shape[1:])

    @property
    def dtype(self):
        return self.parts[0].dtype

    def take(self, indices) -> "Joined":
        return Joined(self.parts, [self._row(int(i)) for i in indices])

    def __getitem__(self, key):
        import torch

        if isinstance(key, slice):
            key = range(*key.indices(len(self)))
        if isinstance(key, int) or (hasattr(key, "ndim") and key.ndim == 0):
            row = self._row(int(key))
            part = max(i for i, start in enumerate(self.starts[:-1]) if start <= row)
            return self.parts[part][row - self.starts[part]]
        return torch.stack([self[int(i)] for i in key]) if len(key) else self.parts[0][0:0]

    def read(self):
        return self[:]

    def _row(self, i: int) -> int:
        return file_row(i, len(self), self.rows)


def file_row(i: int, length: int, rows: Optional[list[int]]) -> int:
    """Row i of a column view (negative from the end) as a row of what it views: its `rows`, or all of them."""
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"row {i} of {length}")
    return i if rows is None else rows[i]


def has_split(data_dir, split: str) -> bool:
    data_dir = Path(data_dir)
    return column_path(data_dir, split, LABELS).exists() or (data_dir / f"{split}.pt").exists()


def load_meta(data_dir) -> dict:
    """The meta.json of prepared data: family, classes (and tasks), splits, the image recipe or tokenizer."""
    return json.loads((Path(data_dir) / "meta.json").read_text())
