"""Named storages: create, list, show, check and delete `storages` rows by name.

A named storage is a place (a local folder or an S3 bucket prefix) with its connection settings,
created once and then referred to by name. Its config holds where and how to connect (endpoint,
region, profile, anonymous, tuning options); credentials come from the standard AWS chain and
are stored in the database only when the request says so explicitly. Secret values are shown as
`***` in every view and never logged.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.db import Database
from dataset_worker.db.models import OutputAttachment, Preparation, SourceAttachment, Storage
from dataset_worker.logs import log_event
from dataset_worker.prep.errors import Conflict, InvalidParameter, NotFound
from dataset_worker.prep.lookup import is_all_digits
from dataset_worker.prep.pathrules import check_path_text
from dataset_worker.prep.views import View, as_utc
from dataset_worker.storage import StorageError, open_source
from dataset_worker.storage.base import ListingFailed
from dataset_worker.storage.s3config import SECRET_KEYS, S3Config, parse_s3_url
from dataset_worker.storage.sftpconfig import parse_sftp

log = logging.getLogger(__name__)

SECRET_MASK = "***"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
CHECK_SAMPLE = 5  # entries listed by a check
S3_FIELDS = ("endpoint", "region", "profile", "anonymous")


class CreateStorageRequest(View):
    """A storage to create: a name, a URL (s3://bucket/prefix or an absolute folder) and
    connection settings."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique name: letters, digits, '.', '_', '-'; not all digits.")
    url: str = Field(
        description="s3://bucket[/prefix], sftp://[user@]host[:port]/path, or an absolute folder."
    )
    endpoint: str | None = Field(default=None, description="S3-compatible endpoint URL.")
    region: str | None = Field(default=None, description="S3 region.")
    profile: str | None = Field(default=None, description="AWS profile for credentials.")
    anonymous: bool = Field(default=False, description="Unsigned S3 requests (public data).")
    options: dict[str, str] = Field(default_factory=dict, description="More config: KEY=VALUE.")
    allow_secret_in_db: bool = Field(
        default=False, description="Allow credentials in `options` (stored in the database)."
    )


class NamedStorageView(View):
    """A storage row with its (masked) config and the preparations that use it."""

    id: int
    name: str
    type: str
    path: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    preparations: list[str]


class StorageCheckView(View):
    """The result of reading a storage's root: ok, an error message, the first entries."""

    name: str
    ok: bool
    message: str
    sample: list[str]


def mask_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The config with every secret value replaced by `***`."""
    return {
        key: SECRET_MASK if key.lower() in SECRET_KEYS else value
        for key, value in (config or {}).items()
    }


def parse_url(url: str) -> tuple[str, str]:
    """(type, path) of a storage URL; InvalidParameter naming `url` otherwise."""
    text = url.strip()
    if text.startswith("s3://"):
        try:
            location = parse_s3_url(text)
        except StorageError as exc:
            raise InvalidParameter(str(exc), field="url") from None
        return "s3", location.url()
    if text.startswith("sftp://"):
        try:
            parse_sftp(text, {})
        except StorageError as exc:
            raise InvalidParameter(str(exc), field="url") from None
        return "sftp", text.rstrip("/")
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise InvalidParameter(
            f'url scheme "{scheme}://" is not supported (use s3://, sftp:// or an absolute folder)',
            field="url",
        )
    if not text.startswith("/"):
        raise InvalidParameter(
            f'url "{url}" must be s3://bucket/prefix, sftp://host/path or an absolute folder path',
            field="url",
        )
    check_path_text(text, "url")
    return "local", str(Path(text).resolve())


def build_config(req: CreateStorageRequest, kind: str) -> dict[str, Any]:
    """The config to store for `req`, validated for its storage type."""
    given = {f: getattr(req, f) for f in S3_FIELDS if getattr(req, f) not in (None, False)}
    if kind != "s3" and given:
        field = next(iter(given))
        raise InvalidParameter(f"{field} applies to s3:// storages only", field=field)
    if kind == "local":
        if req.options:
            raise InvalidParameter("options apply to s3:// and sftp:// storages", field="options")
        return {}
    if kind == "sftp":
        try:
            parse_sftp(req.url.strip(), req.options)
        except StorageError as exc:
            raise InvalidParameter(str(exc), field="options") from None
        return dict(req.options)
    config: dict[str, Any] = dict(given)
    for key, value in req.options.items():
        if key in config:
            raise InvalidParameter(f'option "{key}" is also given as --{key}', field="options")
        config[key] = value
    try:
        S3Config.from_mapping(config, allow_secrets=req.allow_secret_in_db)
    except StorageError as exc:
        # The message names the key (S3 config "endpoint" ...): a key given as its own field
        # is reported under that field.
        field = next((key for key in given if f'"{key}"' in str(exc)), "options")
        raise InvalidParameter(str(exc), field=field) from None
    return config


def validate_storage_name(name: str) -> None:
    """Names are 1-255 letters, digits, '.', '_', '-', starting with a letter or digit, and not
    all digits (an all-digit value is read as an id)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidParameter(
            f'name "{name}" must be 1-255 letters, digits, ".", "_" or "-", starting with a '
            "letter or digit",
            field="name",
        )
    if is_all_digits(name):
        raise InvalidParameter(f'name "{name}" must not be all digits', field="name")


def find_storage(session: Session, name_or_id: str | int) -> Storage:
    """The storage with this name (or id, for an all-digit value); NotFound otherwise."""
    query = select(Storage)
    text = str(name_or_id)
    if is_all_digits(text):
        query = query.where(Storage.id == int(text))
    else:
        query = query.where(Storage.name == text)
    storage = session.scalar(query)
    if storage is None:
        raise NotFound(f'storage "{name_or_id}" does not exist')
    return storage


def _users(session: Session, storage_id: int) -> list[str]:
    sources = (
        select(Preparation.name)
        .join(SourceAttachment, SourceAttachment.preparation_id == Preparation.id)
        .where(SourceAttachment.storage_id == storage_id)
    )
    outputs = (
        select(Preparation.name)
        .join(OutputAttachment, OutputAttachment.preparation_id == Preparation.id)
        .where(OutputAttachment.storage_id == storage_id)
    )
    return sorted(set(session.scalars(sources)) | set(session.scalars(outputs)))


def _view(session: Session, storage: Storage) -> NamedStorageView:
    return NamedStorageView(
        id=storage.id,
        name=storage.name,
        type=storage.type,
        path=storage.path,
        config=mask_config(storage.config),
        created_at=as_utc(storage.created_at),
        updated_at=as_utc(storage.updated_at),
        preparations=_users(session, storage.id),
    )


def create_storage(db: Database, req: CreateStorageRequest) -> NamedStorageView:
    """Validate and insert a named storage; Conflict when the name is taken."""
    validate_storage_name(req.name)
    kind, path = parse_url(req.url)
    config = build_config(req, kind)

    def insert(session: Session) -> NamedStorageView:
        if session.scalar(select(Storage.id).where(Storage.name == req.name)) is not None:
            raise Conflict(f'a storage named "{req.name}" already exists')
        storage = Storage(name=req.name, type=kind, path=path, config=config)
        session.add(storage)
        session.flush()
        return _view(session, storage)

    view = db.run_write(insert)
    log_event(log, "storage.created", id=view.id, storage=view.name, type=kind, path=path)
    return view


def list_storages(db: Database) -> list[NamedStorageView]:
    """Every storage, by id."""
    with db.read() as session:
        return [_view(session, s) for s in session.scalars(select(Storage).order_by(Storage.id))]


def get_storage(db: Database, name_or_id: str | int) -> NamedStorageView:
    """One storage by name or id."""
    with db.read() as session:
        return _view(session, find_storage(session, name_or_id))


def delete_storage(db: Database, name_or_id: str | int) -> NamedStorageView:
    """Delete a storage no preparation uses; Conflict (naming them) otherwise."""

    def delete(session: Session) -> NamedStorageView:
        storage = find_storage(session, name_or_id)
        view = _view(session, storage)
        if view.preparations:
            raise Conflict(
                f'storage "{storage.name}" is used by preparation(s) '
                f"{', '.join(view.preparations)}; delete those first"
            )
        session.delete(storage)
        return view

    view = db.run_write(delete)
    log_event(log, "storage.deleted", id=view.id, storage=view.name)
    return view


def check_storage(db: Database, name_or_id: str | int) -> StorageCheckView:
    """List the first entries of the storage's root: does it exist and can we read it?"""
    with db.read() as session:
        storage = find_storage(session, name_or_id)
        name, kind, path, config = storage.name, storage.type, storage.path, dict(storage.config)
    problems: list[str] = []
    try:
        source = open_source(kind, path, config)
        sample = [
            entry.path + ("/" if entry.is_dir else "")
            for entry in islice(
                source.walk(lambda p, exc: problems.append(f"{p}: {exc}")), CHECK_SAMPLE
            )
        ]
    except ListingFailed as exc:  # what failed, not what a scan would do about it
        return StorageCheckView(name=name, ok=False, message=exc.brief, sample=[])
    except (StorageError, OSError) as exc:
        return StorageCheckView(name=name, ok=False, message=str(exc), sample=[])
    except Exception as exc:  # a client library error (credentials, DNS…): report, not crash
        return StorageCheckView(
            name=name, ok=False, message=f"{type(exc).__name__}: {exc}", sample=[]
        )
    message = "; ".join(problems) if problems else f"{path} is readable"
    return StorageCheckView(name=name, ok=not problems, message=message, sample=sample)
