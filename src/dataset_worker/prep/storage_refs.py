"""`prep create --source NAME[:/sub/path] --output NAME[:/path]`: named storages as a
preparation's source or output.

A value is a storage reference when it is a storage name, optionally followed by ":/sub/path",
and a storage of that name exists (an absolute path is always a folder). The preparation still
gets its own `<prep>-source` / `<prep>-output` rows: copies of the named storage's type and
config with the sub path joined to its path, so later changes to the named storage never move
an existing preparation's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dataset_worker.db import Database
from dataset_worker.db.models import Storage
from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.pathrules import check_path_text

REFERENCE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,254})(?::(?P<sub>/.*))?")


@dataclass(frozen=True)
class StorageTarget:
    """Where a preparation's source or output is: a storage type, path and config."""

    type: str
    path: str
    config: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The path, for messages and logs (never the config)."""
        return self.path


def looks_like_reference(value: str | None) -> bool:
    """NAME or NAME:/sub/path (not an absolute or dotted path)."""
    return value is not None and REFERENCE.fullmatch(value.strip()) is not None


def _join(kind: str, base: str, sub: str, field_name: str) -> str:
    parts = [p for p in sub.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise InvalidParameter(
            f'{field_name} sub path "{sub}" must not contain "." or ".." segments', field=field_name
        )
    if not parts:
        return base
    if kind == "local":
        return str(Path(base, *parts))
    return base.rstrip("/") + "/" + "/".join(parts)


def resolve_reference(
    db: Database, value: str | None, field_name: str, *, strict: bool
) -> StorageTarget | None:
    """The target a reference names; None for a folder path. With `strict` (the HTTP API, where
    relative folders are refused) a reference-shaped value must name an existing storage."""
    if not looks_like_reference(value):
        return None
    assert value is not None
    match = REFERENCE.fullmatch(value.strip())
    assert match is not None
    name, sub = match.group("name"), match.group("sub") or ""
    with db.read() as session:
        storage = session.scalar(select(Storage).where(Storage.name == name))
        if storage is None:
            if strict or sub:
                raise InvalidParameter(
                    f'{field_name} "{value}" names no storage: create it with `storage create '
                    f"{name} URL`, or give an absolute folder path",
                    field=field_name,
                )
            return None  # a relative folder of the same shape (command line)
        kind, base, config = storage.type, storage.path, dict(storage.config or {})
    return StorageTarget(kind, _join(kind, base, sub, field_name), config)


def split_references(
    db: Database, source: str, output: str | None, *, strict: bool
) -> tuple[str, str | None, dict[str, StorageTarget]]:
    """Resolve both values: references to local folders become plain folder paths (so every
    folder rule applies to them); other storages are returned by field name."""
    remote: dict[str, StorageTarget] = {}
    values: dict[str, str | None] = {"source": source, "output": output}
    for field_name, value in list(values.items()):
        target = resolve_reference(db, value, field_name, strict=strict)
        if target is None:
            continue
        if target.type == "local":
            values[field_name] = target.path
        else:
            remote[field_name] = target
    src, out = remote.get("source"), remote.get("output")
    if src is not None and out is not None and src.type == out.type:
        if out.path == src.path or out.path.startswith(src.path.rstrip("/") + "/"):
            # The scan would pick up the CAR files the pack jobs write.
            raise InvalidParameter(
                f'output "{out.path}" must not be the source or inside it ("{src.path}")',
                field="output",
            )
    return values["source"] or "", values["output"], remote


def check_local_side(field_name: str, value: str | None) -> Path | None:
    """The folder rules for one local side when the other side is a remote storage; no output
    gives None (an inline preparation)."""
    if value is None or not value.strip():
        if field_name == "source":
            raise InvalidParameter("source must not be empty: give the folder to prepare")
        return None
    check_path_text(value, field_name)
    path = Path(value).resolve()
    if field_name == "source" and not path.is_dir():
        raise InvalidParameter(f'source "{value}" is not an existing directory')
    if field_name == "output" and path.exists() and not path.is_dir():
        raise InvalidParameter(f'output "{value}" exists and is not a directory')
    return path
