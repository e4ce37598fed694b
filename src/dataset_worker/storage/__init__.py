"""Source and output storages behind one small interface (local folders for now)."""

from __future__ import annotations

from dataset_worker.storage.base import (
    OutputStorage,
    RangeStream,
    SourceChangedError,
    SourceEntry,
    SourceStorage,
    SpaceInfo,
    StorageError,
    TempOutput,
)
from dataset_worker.storage.local import LocalOutput, LocalSource
from dataset_worker.storage.select import choose_output, open_output, open_source

__all__ = [
    "LocalOutput",
    "LocalSource",
    "OutputStorage",
    "RangeStream",
    "SourceChangedError",
    "SourceEntry",
    "SourceStorage",
    "SpaceInfo",
    "StorageError",
    "TempOutput",
    "choose_output",
    "open_output",
    "open_source",
]
