"""Tables read as sources read them: CSV, TSV, JSONL or Parquet, a path or a URI (data/location.py), into a
pyarrow Table of the columns asked for; errors name the file, the line or the column. And the label
columns of a table source (one, or several for a multi-task job)."""
from __future__ import annotations

from typing import Optional

from raytune_ft.data import location
from raytune_ft.data.config import SPLITS
from raytune_ft.errors import InputError

# Table formats by suffix. TSV (GLUE's format) is tab-delimited with a header row and no quoting: a
# field ends at the next tab or line end, so quotes inside a text are kept as they are.
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
_DELIMITED = {".csv": ("CSV", ","), ".tsv": ("TSV", "\t")}


def _check_utf8(path: location.Location, data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {column}); "
                         "save the file as UTF-8") from None


def _csv_reader(data: bytes, suffix: str):
    import csv
    import io

    text = io.StringIO(data.decode("utf-8-sig"), newline="")
    if suffix == ".tsv":
        return csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(text)


def _csv_bad_line(data: bytes, suffix: str = ".csv") -> Optional[str]:
    """The first line whose field count differs from the header's, as 'line N: ...' (pyarrow does not say)."""
    import csv

    reader = _csv_reader(data, suffix)
    try:
        header = next(reader, None)
        for row in reader:
            if header is not None and row and len(row) != len(header):
                return f"line {reader.line_num}: {len(row)} fields where the header has {len(header)}"
    except csv.Error as e:
        return f"line {reader.line_num}: {e}"
    return None


def _jsonl_bad_line(data: bytes) -> Optional[str]:
    """The first line that is not one JSON object, as 'line N: ...'."""
    import json

    for number, line in enumerate(data.decode("utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            return f"line {number}: not valid JSON ({e.msg} at column {e.colno})"
        if not isinstance(value, dict):
            return f"line {number}: a JSON {type(value).__name__} where each line must be one object " \
                   '(e.g. {"text": ..., "label": ...})'
    return None


def read_table(path: location.Location, columns: list[str], text_columns: tuple[str, ...] = ()):
    """CSV, TSV, JSONL or Parquet (a path, or a URI read through pyarrow's filesystems) into a pyarrow
    Table with `columns`; errors name the file, the line or the column. CSV / TSV cells of
    `text_columns` stay text (never parsed as numbers)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    suffix = location.suffix(path)
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{path}: unknown table format {suffix!r}; use {', '.join(TABLE_SUFFIXES)}")
    try:
        if suffix == ".parquet":
            source, filesystem = location.parquet_source(path)  # a bucket's object is read through pyarrow.fs
            if location.kind(path) is None:  # else pyarrow's "not found" would read as a corrupt file
                raise InputError(f"{path}: no such file (moved or removed since the spec was checked?)")
            try:
                check_columns(path, pq.read_schema(source, filesystem=filesystem).names, columns)
                table = pq.read_table(source, columns=columns, filesystem=filesystem)  # only these columns are read
            except (pa.ArrowException, OSError) as e:
                raise InputError(f"{path}: not a readable Parquet file (truncated or corrupt?): {e}") from None
        else:
            data = location.read_bytes(path)
            _check_utf8(path, data)
            try:
                if suffix in _DELIMITED:
                    check_columns(path, _csv_header(data, suffix), columns)
                    delimiter = _DELIMITED[suffix][1]
                    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if suffix == ".csv" else False)
                    options = pacsv.ConvertOptions(include_columns=columns,
                                                   column_types={c: pa.string() for c in text_columns})
                    table = pacsv.read_csv(pa.BufferReader(data), parse_options=parse, convert_options=options)
                else:
                    table = pajson.read_json(pa.BufferReader(data))
            except pa.ArrowException as e:
                where = _csv_bad_line(data, suffix) if suffix in _DELIMITED else _jsonl_bad_line(data)
                kind = _DELIMITED[suffix][0] if suffix in _DELIMITED else "JSON lines"
                raise InputError(f"{path} {where}" if where else f"{path}: not a readable {kind} file: {e}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    check_columns(path, table.column_names, columns)
    return table.select(columns)


def _csv_header(data: bytes, suffix: str = ".csv") -> list[str]:
    import csv

    try:
        return next(_csv_reader(data, suffix), [])
    except csv.Error:
        return []


def check_columns(path: location.Location, have: list[str], want: list[str]) -> None:
    missing = [c for c in want if c not in have]
    if missing:
        raise InputError(f"{path}: no column {', '.join(map(repr, missing))}; "
                         f"it has {', '.join(map(repr, have)) if have else 'no columns (an empty file?)'}")


def label_columns(config) -> list[str]:
    """The label columns a table source reads: data.label_columns (multi-task), else data.label_column."""
    return list(config.label_columns or [config.label_column])


def read_labels(table, config) -> list:
    """A table's labels: one per row, or a tuple per row (one per task) for a multi-task source."""
    columns = [table.column(c).to_pylist() for c in label_columns(config)]
    return list(zip(*columns)) if config.label_columns else columns[0]


def train_label_column(config) -> list:
    """The train file's label column(s) alone (as `load` reads it: CSV / TSV cells as text)."""
    columns = label_columns(config)
    return read_labels(read_table(config.train, columns, text_columns=tuple(columns)), config)


def split_columns(config, sample_column: str, text: bool = False):
    """(split, path, samples, labels) for each split file the config names (text: CSV cells stay strings)."""
    for split in SPLITS:
        path = getattr(config, split)
        if path is not None:
            columns = [sample_column, *label_columns(config)]
            table = read_table(path, columns, text_columns=tuple(columns) if text else ())
            yield split, path, table.column(sample_column).to_pylist(), read_labels(table, config)
