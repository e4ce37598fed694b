"""Source and output storages behind one small interface: local folders, S3-compatible buckets
and SFTP servers (`base.py` holds the protocols; boto3 and paramiko load only when used)."""

from __future__ import annotations

from dataset_worker.storage.base import (
    RESCAN_HINT,
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
    "RESCAN_HINT",
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
