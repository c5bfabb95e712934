"""The data: sources (one file each in sources/, registered by name), their spec sections (config.py),
preparation once per job (prepare.py) into files trials read (store.py)."""
from raytune_ft.data.config import DataConfig  # noqa: F401
from raytune_ft.data.sources import DATA_SOURCES  # noqa: F401  (registers every source)
from raytune_ft.data.prepare import check_train_labels, prepare_data  # noqa: F401
from raytune_ft.data.store import has_split, load_meta, load_split  # noqa: F401
from raytune_ft.errors import InputError  # noqa: F401
