"""Opening storages by type, and Singularity's choice of output storage."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from dataset_worker.storage.base import OutputStorage, SourceStorage, StorageError
from dataset_worker.storage.local import LocalOutput, LocalSource

T = TypeVar("T")

SKIP_FREE_RATIO = 0.01  # Singularity skips an output with <= 1 % free space


def open_source(kind: str, path: str, config: Mapping[str, Any] | None = None) -> SourceStorage:
    """The source storage for a `storages` row's type, path and config."""
    if kind == "local":
        return LocalSource(path)
    if kind == "s3":
        from dataset_worker.storage.s3 import open_s3_source  # boto3 loads only when needed

        return open_s3_source(path, _s3_config(config))
    if kind == "sftp":
        from dataset_worker.storage.sftp import open_sftp_source  # paramiko loads when needed

        return open_sftp_source(path, config)
    raise StorageError(f'storage type "{kind}" is not supported (use "local", "s3" or "sftp")')


def open_output(kind: str, path: str, config: Mapping[str, Any] | None = None) -> OutputStorage:
    """The output storage for a `storages` row's type, path and config."""
    if kind == "local":
        return LocalOutput(path)
    if kind == "s3":
        from dataset_worker.storage.s3 import open_s3_output

        return open_s3_output(path, _s3_config(config))
    if kind == "sftp":
        from dataset_worker.storage.sftp import open_sftp_output

        return open_sftp_output(path, config)
    raise StorageError(f'storage type "{kind}" is not supported (use "local", "s3" or "sftp")')


def _s3_config(config: Mapping[str, Any] | None) -> Any:
    from dataset_worker.storage.s3config import S3Config

    # A stored row was validated when it was created; its secrets were allowed then.
    return S3Config.from_mapping(config, allow_secrets=True)


def choose_output(
    outputs: Sequence[tuple[T, OutputStorage]], needed: int, *, rng: random.Random | None = None
) -> tuple[T, OutputStorage]:
    """Pick one output, weighted by its free/total ratio, among those with room for `needed`
    bytes and more than 1 % free; a backend that cannot report space gets weight 1.

    Raises StorageError naming every candidate and why it was refused when none is usable.
    """
    if not outputs:
        raise StorageError("no output storage is attached")
    weights: list[float] = []
    usable: list[tuple[T, OutputStorage]] = []
    refusals: list[str] = []
    for key, output in outputs:
        try:
            space = output.space()
        except (OSError, StorageError) as exc:
            refusals.append(f"{output.describe()}: {exc}")
            continue
        if space.free is None or not space.total:
            usable.append((key, output))
            weights.append(1.0)
            continue
        ratio = space.free / space.total
        if ratio <= SKIP_FREE_RATIO or space.free < needed:
            refusals.append(
                f"{output.describe()}: {space.free} bytes free of {space.total}, {needed} needed"
            )
            continue
        usable.append((key, output))
        weights.append(ratio)
    if not usable:
        raise StorageError("no output storage has enough free space: " + "; ".join(refusals))
    chooser = rng if rng is not None else random
    return chooser.choices(usable, weights=weights, k=1)[0]
