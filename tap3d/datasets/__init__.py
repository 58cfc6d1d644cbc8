"""Datasets: mesh sources, the Zarr format, the Dask build and the readers.

``tap3d.datasets.build(...)`` is what ``tap-cli build-dataset`` calls.
"""

from tap3d.datasets.build import BuildConfig, BuildSummary, build
from tap3d.datasets.format import FORMAT, FORMAT_VERSION, STATUS_DONE, STATUS_FAILED
from tap3d.datasets.reader import open_dataset
from tap3d.datasets.sources import Source, SourceError, discover

__all__ = [
    "BuildConfig",
    "BuildSummary",
    "build",
    "open_dataset",
    "discover",
    "Source",
    "SourceError",
    "FORMAT",
    "FORMAT_VERSION",
    "STATUS_DONE",
    "STATUS_FAILED",
]
