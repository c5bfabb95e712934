"""Image Parquet: one Parquet file per split, a column of encoded images and a label column (or several)."""
from __future__ import annotations

import io
from typing import Literal

from pydantic import Field

from raytune_ft.data import location
from raytune_ft.data.config import SPLITS, FileSplitsConfig
from raytune_ft.data.image_files import open_image
from raytune_ft.data.sources.base import DataSource, register_data_source
from raytune_ft.data.tables import check_columns, label_columns, read_labels, read_table, train_label_column
from raytune_ft.errors import InputError


class ImageParquetConfig(FileSplitsConfig):
    source: Literal["image_parquet"] = "image_parquet"
    suffixes = (".parquet",)  # image bytes need a binary column
    image_column: str = Field("image", description="encoded image bytes (or a struct with a 'bytes' field)")
    label_column: str = Field("label", description="the column of labels (a class name or a whole number)")
    multi_task = True


@register_data_source
class ImageParquet(DataSource):
    name = "image_parquet"
    family = "vision"
    Config = ImageParquetConfig
    decodes_in_parts = False  # rows are reached by reading the file's record batches from its start

    def train_labels(self, config):
        return train_label_column(config)

    def index(self, config):
        """(file, row) of every image, with its label; only the label column is read."""
        out = {}
        for split in SPLITS:
            path = getattr(config, split)
            if path is not None:
                _check_image_column(path, config.image_column)
                labels = read_labels(read_table(path, label_columns(config)), config)
                out[split] = ([(path, row) for row in range(len(labels))], labels)
        return out

    def decode(self, config, refs, chunk):
        """The images of `refs` (rows of one file, ascending), streamed from the file in record batches:
        never more than a batch of encoded images in memory."""
        import pyarrow.parquet as pq

        if not refs:
            return
        path = refs[0][0]
        wanted = [row for _, row in refs]
        if any(p != path for p, _ in refs) or wanted != sorted(wanted):
            raise ValueError("image_parquet decodes rows of one file in ascending order")
        images, at, first = [], 0, 0
        where, remote = location.parquet_source(path)
        source = remote.open_input_file(where) if remote is not None else where  # a bucket's object, streamed
        batches = pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20).iter_batches(
            batch_size=256, columns=[config.image_column])
        for batch in batches:
            cells = batch.column(0)
            while at < len(wanted) and wanted[at] < first + len(cells):
                row = wanted[at]
                cell = cells[row - first].as_py()
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                if not isinstance(data, (bytes, bytearray)):
                    raise InputError(f"{path} row {row}: column {config.image_column!r} holds no image bytes "
                                     f"(found {type(data).__name__})")
                images.append(open_image(io.BytesIO(data), f"{path} row {row}"))
                at += 1
                if len(images) == chunk:
                    yield images
                    images = []
            first += len(cells)
            if at == len(wanted):
                break
        if images:
            yield images


def _check_image_column(path, column: str) -> None:
    import pyarrow.parquet as pq

    where, remote = location.parquet_source(path)
    check_columns(path, pq.read_schema(where, filesystem=remote).names, [column])

