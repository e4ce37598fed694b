"""The schema: Singularity v1.0's worker tables (docs/architecture.md#database-tables), same on SQLite and PostgreSQL.

CIDs are stored as binary CID bytes, as Singularity does. Ids are BigInteger so PostgreSQL tables
can grow past 2^31 rows; SQLite maps them to INTEGER PRIMARY KEY (rowid) via the variant below.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Defined apart so that light readers can use them without the ORM; re-exported here.
from dataset_worker.db.cidkey import key_of
from dataset_worker.db.enums import JobState as JobState
from dataset_worker.db.enums import JobType as JobType
from dataset_worker.db.enums import PieceType as PieceType

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (autoincrementing, fast).
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now in UTC (every timestamp in the database is UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (Alembic needs them on SQLite)."""

    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as plain strings (no native enum type): values stay readable and adding a value
    # needs no ALTER TYPE on PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=15,
        values_callable=lambda e: [m.value for m in e],
    )


class Worker(Base):
    """One worker thread: its own row and heartbeat; jobs record ownership by this id."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    type: Mapped[str] = mapped_column(String(31), default="dataset_worker")
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Storage(Base):
    """A place files are read from (source) or CAR files are written to (output)."""

    __tablename__ = "storages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    type: Mapped[str] = mapped_column(String(31), default="local")
    path: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Preparation(Base):
    """A dataset preparation: sources, outputs and size limits."""

    __tablename__ = "preparations"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    delete_after_export: Mapped[bool] = mapped_column(Boolean, default=False)
    max_size: Mapped[int] = mapped_column(BigInteger)
    piece_size: Mapped[int] = mapped_column(BigInteger)
    min_piece_size: Mapped[int] = mapped_column(BigInteger)
    no_inline: Mapped[bool] = mapped_column(Boolean, default=False)
    no_dag: Mapped[bool] = mapped_column(Boolean, default=False)
    # Queue daggen by itself once the last pack job completes (`prep create --no-auto`: off).
    auto_chain: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Pack records each file's sha256 while it reads (`prep create --no-file-hash`: off).
    file_hash: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # A pack that fails on a changed source file queues the re-planning scan (prep rescan).
    auto_rescan: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The manifest's dataset uuid, made once and kept; and the manifest fields last exported.
    uuid: Mapped[str | None] = mapped_column(String(36))
    manifest_meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    source_attachments: Mapped[list[SourceAttachment]] = relationship(
        back_populates="preparation", cascade="all, delete-orphan", order_by="SourceAttachment.id"
    )
    output_attachments: Mapped[list[OutputAttachment]] = relationship(
        back_populates="preparation", cascade="all, delete-orphan", order_by="OutputAttachment.id"
    )


class SourceAttachment(Base):
    """A source storage attached to a preparation: the unit every job works on."""

    __tablename__ = "source_attachments"
    __table_args__ = (UniqueConstraint("preparation_id", "storage_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    preparation_id: Mapped[int] = mapped_column(
        ForeignKey("preparations.id", ondelete="CASCADE"), index=True
    )
    storage_id: Mapped[int] = mapped_column(ForeignKey("storages.id", ondelete="CASCADE"))
    # A scan has listed the source to the end once: later scans list all, never resume.
    listed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    preparation: Mapped[Preparation] = relationship(back_populates="source_attachments")
    storage: Mapped[Storage] = relationship()


class OutputAttachment(Base):
    """An output storage (where CAR files go) attached to a preparation."""

    __tablename__ = "output_attachments"
    __table_args__ = (UniqueConstraint("preparation_id", "storage_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    preparation_id: Mapped[int] = mapped_column(
        ForeignKey("preparations.id", ondelete="CASCADE"), index=True
    )
    storage_id: Mapped[int] = mapped_column(ForeignKey("storages.id", ondelete="CASCADE"))

    preparation: Mapped[Preparation] = relationship(back_populates="output_attachments")
    storage: Mapped[Storage] = relationship()


class Job(Base):
    """A scan, pack or daggen job. `worker_id` is the thread that owns it while processing."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The claim query: WHERE type = ? AND state = ? ORDER BY id.
        Index("ix_jobs_type_state_id", "type", "state", "id"),
        # The jobs API lists newest first, optionally filtered by state.
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_type_id", "type", "id"),
        # The jobs API filtered by preparation (one attachment), with or without a state.
        Index("ix_jobs_attachment_id", "attachment_id", "id"),
        Index("ix_jobs_attachment_state_id", "attachment_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    type: Mapped[JobType] = mapped_column(_enum(JobType, "job_type"))
    state: Mapped[JobState] = mapped_column(_enum(JobState, "job_state"))
    error_message: Mapped[str] = mapped_column(Text, default="")
    error_stack_trace: Mapped[str] = mapped_column(Text, default="")
    worker_id: Mapped[str | None] = mapped_column(
        ForeignKey("workers.id", ondelete="SET NULL"), index=True
    )
    attachment_id: Mapped[int | None] = mapped_column(
        ForeignKey("source_attachments.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Retries: failed attempts so far, and when a transiently failed job may be claimed again.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who ran the job last: kept after the run (worker rows are deleted when workers stop).
    last_worker_id: Mapped[str | None] = mapped_column(String(63))
    last_worker_host: Mapped[str | None] = mapped_column(String(255))

    attachment: Mapped[SourceAttachment | None] = relationship()
    worker: Mapped[Worker | None] = relationship()


class Directory(Base):
    """A directory of a source. `data` holds its entries; `cid` is set once it has content."""

    __tablename__ = "directories"
    __table_args__ = (Index("ix_directories_attachment_parent", "attachment_id", "parent_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cid: Mapped[bytes | None] = mapped_column(LargeBinary)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    name: Mapped[str] = mapped_column(Text, default="")
    exported: Mapped[bool] = mapped_column(Boolean, default=False)
    attachment_id: Mapped[int | None] = mapped_column(
        ForeignKey("source_attachments.id", ondelete="SET NULL")
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("directories.id", ondelete="CASCADE"), index=True
    )


class DirectoryEntry(Base):
    """An entry of a wide directory (docs/architecture.md#wide-directories).

    Up to a few thousand entries, a directory keeps them in its own `data` blob. Past that, the
    blob would be decoded and rewritten whole by every pack job and every daggen, so they live
    here, one row each. The key leads with the name's HAMT hash, so the rows are stored in the
    order a HAMT is built in; the hash is a function of the name, so the key is as unique as
    (directory, name). `extras` are a split file's intermediate blocks, as in the blob.
    """

    __tablename__ = "directory_entries"
    # The rows are their key: without a rowid, SQLite keeps one b-tree for table and key.
    __table_args__ = ({"sqlite_with_rowid": False},)

    directory_id: Mapped[int] = mapped_column(
        ForeignKey("directories.id", ondelete="CASCADE"), primary_key=True
    )
    hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    name: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)  # raw name bytes
    cid: Mapped[bytes] = mapped_column(LargeBinary)
    tsize: Mapped[int] = mapped_column(BigInteger)
    extras: Mapped[bytes | None] = mapped_column(LargeBinary)


class File(Base):
    """A file seen by a scan. A changed file becomes a new row with the same path."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_attachment_path", "attachment_id", "path"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cid: Mapped[bytes | None] = mapped_column(LargeBinary)
    path: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(255), default="")
    # sha256 of the whole file's bytes, recorded by pack (NULL: not hashed, or not yet).
    sha256: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)  # -1 = unknown
    last_modified_nano: Mapped[int] = mapped_column(BigInteger)
    attachment_id: Mapped[int | None] = mapped_column(
        ForeignKey("source_attachments.id", ondelete="SET NULL")
    )
    directory_id: Mapped[int | None] = mapped_column(
        ForeignKey("directories.id", ondelete="CASCADE"), index=True
    )


class FileRange(Base):
    """A byte range of a file; `job_id` is the pack job that packs it (NULL: not yet batched).

    A range packed as one raw leaf keeps that block's place in its job's CAR in `car_offset`
    instead of a `car_blocks` row (docs/architecture.md#one-leaf-ranges): the block's CID is the
    range's, its bytes the range's, and its CAR is the job's.
    """

    __tablename__ = "file_ranges"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int] = mapped_column(BigInteger)  # -1 = unknown size
    cid: Mapped[bytes | None] = mapped_column(LargeBinary)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    # NULL: not packed, packed as several blocks (their car_blocks rows), or no-inline.
    car_offset: Mapped[int | None] = mapped_column(BigInteger)

    file: Mapped[File] = relationship()


# A job's ranges in id order, which is its CAR's order: pack pages through them, and so do
# inline rebuilds through its one-leaf ranges. With job_id alone, PostgreSQL walked the primary
# key over every range of the database to find one job's first page.
Index("ix_file_ranges_job_range", FileRange.job_id, FileRange.id)
# One-leaf ranges found by CID, as car_blocks rows are (db/cidkey.py); the others have no block.
Index(
    "ix_file_ranges_leaf_cid_key",
    key_of(FileRange.cid),
    sqlite_where=FileRange.car_offset.is_not(None),
    postgresql_where=FileRange.car_offset.is_not(None),
)


class Car(Base):
    """A piece: one CAR file with its piece CID. At most one data piece per pack job."""

    __tablename__ = "cars"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    piece_type: Mapped[PieceType] = mapped_column(_enum(PieceType, "piece_type"))
    piece_cid: Mapped[bytes] = mapped_column(LargeBinary, index=True)
    piece_size: Mapped[int] = mapped_column(BigInteger)
    root_cid: Mapped[bytes] = mapped_column(LargeBinary)
    file_size: Mapped[int] = mapped_column(BigInteger)
    min_piece_size_padding: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_id: Mapped[int | None] = mapped_column(ForeignKey("storages.id", ondelete="SET NULL"))
    storage_path: Mapped[str] = mapped_column(Text, default="")
    num_of_files: Mapped[int] = mapped_column(BigInteger, default=0)
    preparation_id: Mapped[int | None] = mapped_column(
        ForeignKey("preparations.id", ondelete="SET NULL"), index=True
    )
    attachment_id: Mapped[int | None] = mapped_column(
        ForeignKey("source_attachments.id", ondelete="SET NULL")
    )
    # Unique: a re-run of a pack job must never register a second piece (NULL for DAG pieces).
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), unique=True
    )


class CarBlock(Base):
    """Where a block sits inside a CAR (inline preparations rebuild CARs from these)."""

    __tablename__ = "car_blocks"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cid: Mapped[bytes] = mapped_column(LargeBinary)  # found through ix_car_blocks_cid_key
    car_offset: Mapped[int] = mapped_column(BigInteger)
    car_block_length: Mapped[int] = mapped_column(Integer)
    varint: Mapped[bytes] = mapped_column(LargeBinary)
    raw_block: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A node's bytes zlib-compressed, instead of raw_block, when that is much smaller
    # (db/nodebytes.py).
    raw_block_zlib: Mapped[bytes | None] = mapped_column(LargeBinary)
    file_offset: Mapped[int | None] = mapped_column(BigInteger)
    car_id: Mapped[int] = mapped_column(ForeignKey("cars.id", ondelete="CASCADE"), index=True)
    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("files.id", ondelete="SET NULL"), index=True
    )


# 8 digest bytes of the CID, not the whole CID: a third of the index's bytes (db/cidkey.py).
Index("ix_car_blocks_cid_key", key_of(CarBlock.cid))


class CarPublication(Base):
    """A CAR about to be published under its final name, written (and committed) before the
    publish; the transaction that records the `cars` row deletes it. A row that outlives its
    job's run marks a file that may exist without a `cars` row: the job's next run and
    `prep delete` remove that file unless some `cars` row uses it."""

    __tablename__ = "car_publications"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # SET NULL, not CASCADE: the row must outlive its job until the file is dealt with.
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    storage_id: Mapped[int] = mapped_column(ForeignKey("storages.id", ondelete="CASCADE"))
    storage_path: Mapped[str] = mapped_column(Text, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DealSchedule(Base):
    """Deals to make over time for one preparation: replicas of each piece with distinct
    providers, within a daily and a total limit (docs/deals.md#schedules)."""

    __tablename__ = "deal_schedules"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    preparation_id: Mapped[int] = mapped_column(
        ForeignKey("preparations.id", ondelete="CASCADE"), index=True
    )
    client: Mapped[str] = mapped_column(String(127))
    # [{"provider": "f01000", "spUrl": "http://…"}, …] in the order given.
    providers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    replicas: Mapped[int] = mapped_column(Integer)
    per_day: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    product: Mapped[str] = mapped_column(String(15))
    duration: Mapped[int] = mapped_column(BigInteger)
    start_epoch_offset: Mapped[int | None] = mapped_column(BigInteger)
    url_template: Mapped[str] = mapped_column(Text)
    indexing: Mapped[bool] = mapped_column(Boolean, default=True)
    announce_payload: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(15), default="active")  # active | paused
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Deal(Base):
    """One deal proposed to one storage provider for one piece (docs/deals.md#deal-states).

    The ULID is chosen once, when the row is claimed, and every retry re-sends the same body, so
    an SP never sees two deals for one piece; the unique (piece, provider) pair makes a second
    deal of one piece with one provider impossible, across processes and restarts.
    """

    __tablename__ = "deals"
    __table_args__ = (
        UniqueConstraint("piece_cid", "provider"),
        # The worker's due deals: WHERE state IN (…) AND next_attempt_at <= now.
        Index("ix_deals_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ulid: Mapped[str] = mapped_column(String(26), unique=True)
    preparation_id: Mapped[int | None] = mapped_column(
        ForeignKey("preparations.id", ondelete="SET NULL"), index=True
    )
    car_id: Mapped[int | None] = mapped_column(ForeignKey("cars.id", ondelete="SET NULL"))
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("deal_schedules.id", ondelete="SET NULL"), index=True
    )
    piece_cid: Mapped[str] = mapped_column(String(127))  # PieceCID v1 (baga…)
    piece_cid_v2: Mapped[str] = mapped_column(String(127))  # what the SP is sent (bafkzcib…)
    piece_size: Mapped[int] = mapped_column(BigInteger)
    payload_size: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(63), index=True)
    sp_url: Mapped[str] = mapped_column(Text)
    client: Mapped[str] = mapped_column(String(127))
    product: Mapped[str] = mapped_column(String(15))
    # proposing | accepted | complete | failed | rejected (deals/states.py)
    state: Mapped[str] = mapped_column(String(15))
    # The exact mk20.Deal body: every retry sends it again unchanged.
    proposal: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next send or status poll is due; while a process sends, its lease end.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)  # last HTTP status from the SP
    last_reason: Mapped[str | None] = mapped_column(Text)  # the SP's reason, or our error
    sp_state: Mapped[str | None] = mapped_column(String(15))  # the SP's DealState
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
