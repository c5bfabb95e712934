"""Data sources. A new one is a class in a file here plus its import line below."""
from raytune_ft.data.base import DATA_SOURCES, DataConfig, InputError  # noqa: F401
from raytune_ft.data import sources  # noqa: F401  (registers them)
from raytune_ft.data.prepare import check_train_labels, load_meta, prepare_data  # noqa: F401
from raytune_ft.data.store import has_split, load_split  # noqa: F401
