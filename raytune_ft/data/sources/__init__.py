"""The data sources. A new one is a file here plus its import line below (strategies/ is the model).

The import order is the registry's order: the order a spec's error message lists the sources in."""
from raytune_ft.data.sources.base import DATA_SOURCES, DataSource, register_data_source  # noqa: F401
from raytune_ft.data.sources import (  # noqa: F401  (each registers itself)
    digits,
    image_folder,
    image_parquet,
    text_table,
    hf_dataset,
    torchvision_dataset,
    prepared,
)
