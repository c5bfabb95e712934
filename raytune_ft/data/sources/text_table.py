"""Text tables: CSV, TSV, JSONL or Parquet files with a text column and a label column (or several)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from raytune_ft.data.config import FileSplitsConfig
from raytune_ft.data.sources.base import DataSource, register_data_source
from raytune_ft.data.tables import TABLE_SUFFIXES, split_columns, train_label_column
from raytune_ft.errors import InputError


class TextTableConfig(FileSplitsConfig):
    source: Literal["text_table"] = "text_table"
    suffixes = TABLE_SUFFIXES
    text_column: str = Field("text", description="the column of texts")
    label_column: str = Field("label", description="the column of labels (a class name or a whole number)")
    multi_task = True


@register_data_source
class TextTable(DataSource):
    """CSV, TSV (tab-delimited, header row: GLUE), JSONL or Parquet files with a text column and a label column."""

    name = "text_table"
    family = "text"
    Config = TextTableConfig

    def train_labels(self, config):
        return train_label_column(config)

    def index(self, config):
        """The texts themselves (small beside what they become), checked here: none empty."""
        out = {}
        for split, path, texts, labels in split_columns(config, config.text_column, text=True):
            for row, text in enumerate(texts):
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"{path} row {row}: column {config.text_column!r} is "
                                     + ("empty" if text is None or isinstance(text, str) else
                                        f"not text ({type(text).__name__} {text!r:.40})"))
            out[split] = (texts, labels)
        return out

    def readable_everywhere(self, config):
        return True  # the refs are the texts

    def decode(self, config, refs, chunk):
        for start in range(0, len(refs), chunk):
            yield refs[start:start + chunk]
