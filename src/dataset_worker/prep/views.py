"""What the preparation use-cases take and return: pydantic models with camelCase JSON.

The same models serve the CLI's `--json` output and the HTTP API, so the shapes are defined once.
Serialise with `model_dump(mode="json", by_alias=True)`. Timestamps are UTC and serialise as
RFC 3339 with a "Z"; CIDs are base32 strings ("" when undefined, as Singularity shows them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from dataset_worker.content.cid import cid_to_str
from dataset_worker.content.piececid2 import InvalidPieceCidV2, piece_cid_v2_from_v1_bytes
from dataset_worker.db.models import Car, Job, JobState, JobType, PieceType, Preparation, Storage
from dataset_worker.defaults import DEFAULT_MAX_SIZE, DEFAULT_MIN_PIECE_SIZE

Stage = Literal["new", "scanning", "packing", "packed", "dag", "done", "paused", "error"]


class View(BaseModel):
    """Base of every view: camelCase aliases, also constructible by field name."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def as_utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime (SQLite hands back naive UTC values)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def cid_text(cid: bytes | None) -> str:
    """Base32 form of a binary CID; "" for an undefined one."""
    return cid_to_str(cid) if cid else ""


class CreatePreparationRequest(View):
    """Body of "create a preparation" (docs/formats.md#preparation-sizes, with one local source and output).

    Sizes accept "31.5GiB", "1MiB", "2000000" or an integer number of bytes.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str = Field(description="Folder to prepare (must exist).")
    output: str | None = Field(
        default=None,
        description="Folder for the CAR files (created if missing). Omit it for an inline "
        "preparation: no CAR files are written, pieces are rebuilt from the source when served.",
    )
    max_size: str | int = DEFAULT_MAX_SIZE
    piece_size: str | int | None = None
    min_piece_size: str | int | None = DEFAULT_MIN_PIECE_SIZE
    no_dag: bool = False
    delete_after_export: bool = False
    no_auto: bool = Field(
        default=False,
        description="Do not chain the steps: no scan queued at creation, no daggen queued "
        "after the last pack job (start each step yourself).",
    )
    no_file_hash: bool = Field(
        default=False, description="Do not record each file's sha256 while packing."
    )
    auto_rescan: bool = Field(
        default=False,
        description="When a pack fails on a source file that changed or vanished, rescan by "
        "itself (once per failure) to re-plan the work around the current files.",
    )


class StorageView(View):
    """A storage: where a preparation reads files or writes CAR files."""

    id: int
    name: str
    type: str
    path: str

    @classmethod
    def from_model(cls, storage: Storage) -> StorageView:
        return cls(id=storage.id, name=storage.name, type=storage.type, path=storage.path)


class PreparationView(View):
    """A preparation as Singularity shows it (docs/api.md#preparation-endpoints), with its storages."""

    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    delete_after_export: bool
    max_size: int
    piece_size: int
    min_piece_size: int
    no_inline: bool
    no_dag: bool
    auto_chain: bool = Field(
        default=True,
        description="Steps run by themselves: scan queued at creation, daggen after packing.",
    )
    file_hash: bool = Field(description="Pack records each file's sha256 (for manifests).")
    auto_rescan: bool = Field(
        default=False, description="A pack failing on a changed source file queues a rescan."
    )
    source_storages: list[StorageView]
    output_storages: list[StorageView]

    @classmethod
    def from_model(cls, prep: Preparation) -> PreparationView:
        """Build from a row whose attachments (and their storages) can be loaded."""
        return cls(
            id=prep.id,
            name=prep.name,
            created_at=as_utc(prep.created_at),
            updated_at=as_utc(prep.updated_at),
            delete_after_export=prep.delete_after_export,
            max_size=prep.max_size,
            piece_size=prep.piece_size,
            min_piece_size=prep.min_piece_size,
            no_inline=prep.no_inline,
            no_dag=prep.no_dag,
            auto_chain=prep.auto_chain,
            file_hash=prep.file_hash,
            auto_rescan=prep.auto_rescan,
            source_storages=[StorageView.from_model(a.storage) for a in prep.source_attachments],
            output_storages=[StorageView.from_model(a.storage) for a in prep.output_attachments],
        )


class JobView(View):
    """A job after a start or pause request."""

    id: int
    type: JobType
    state: JobState
    error_message: str
    worker_id: str | None
    attachment_id: int | None

    @classmethod
    def from_model(cls, job: Job) -> JobView:
        return cls(
            id=job.id,
            type=job.type,
            state=job.state,
            error_message=job.error_message,
            worker_id=job.worker_id,
            attachment_id=job.attachment_id,
        )


class PieceView(View):
    """A piece (a `cars` row) in Singularity's Car shape (docs/api.md#preparation-endpoints); `storagePath` is the CAR file name.

    `pieceCidV2` is the FRC-0069 piece CID, which also binds the payload size: the piece file's
    `fileSize` bytes, Singularity's written zero padding included (docs/formats.md#piececid-v2).
    """

    id: int
    created_at: datetime
    piece_type: PieceType
    piece_cid: str
    piece_cid_v2: str
    piece_size: int
    root_cid: str
    file_size: int
    min_piece_size_padding: int
    storage_id: int | None
    storage_path: str
    num_of_files: int
    preparation_id: int | None
    attachment_id: int | None
    job_id: int | None

    @classmethod
    def from_model(cls, car: Car) -> PieceView:
        return cls(
            id=car.id,
            created_at=as_utc(car.created_at),
            piece_type=car.piece_type,
            piece_cid=cid_text(car.piece_cid),
            piece_cid_v2=piece_cid_v2_of(car),
            piece_size=car.piece_size,
            root_cid=cid_text(car.root_cid),
            file_size=car.file_size,
            min_piece_size_padding=car.min_piece_size_padding,
            storage_id=car.storage_id,
            storage_path=car.storage_path,
            num_of_files=car.num_of_files,
            preparation_id=car.preparation_id,
            attachment_id=car.attachment_id,
            job_id=car.job_id,
        )


def piece_cid_v2_of(car: Car) -> str:
    """The v2 piece CID of a `cars` row: its payload is the piece file, `file_size` bytes; ""
    when the row's sizes cannot make one (a row this project did not write)."""
    try:
        return piece_cid_v2_from_v1_bytes(car.piece_cid, car.file_size, car.piece_size)
    except InvalidPieceCidV2:
        return ""


class JobErrorView(View):
    """The newest error of a preparation's jobs: a job that failed for good, or the last
    failure of one waiting for a retry."""

    job_id: int
    type: JobType
    state: JobState = Field(description="error (failed for good), or ready while a retry waits.")
    attempts: int = Field(description="Failed attempts so far.")
    message: str


class PreparationStatus(View):
    """Progress of a preparation.

    `jobs` maps every job type to every state with its count (zeros included, so the shape is
    fixed). `bytesScanned` is the sum of the sizes of the files the scans recorded;
    `bytesPacked` the sum of the lengths of the ranges that have been packed (have a CID).
    `rootCid` is the root of the newest DAG piece, or null before daggen has produced one.
    `stage` is where the pipeline is, from the job states (see prep/status.py).
    """

    id: int
    name: str
    stage: Stage = Field(
        description="new (nothing queued), scanning, packing, packed (waiting for a manual "
        "start-daggen), dag, done; paused when the current step is paused, error when a job "
        "failed for good (see prep retry)."
    )
    auto_chain: bool = Field(description="Steps run by themselves (see prep create --no-auto).")
    jobs: dict[JobType, dict[JobState, int]]
    files_scanned: int
    bytes_scanned: int
    bytes_packed: int
    pieces: int
    root_cid: str | None
    last_error: JobErrorView | None = Field(
        default=None,
        description="The newest job error (latest finished first), or null when no job of the "
        "preparation carries one (a completed job drops its error).",
    )

    def total_jobs(self) -> int:
        """Number of jobs of every type and state."""
        return sum(sum(states.values()) for states in self.jobs.values())

    def count(self, *, state: JobState, job_type: JobType | None = None) -> int:
        """Number of jobs in `state` (of one type, or of all types)."""
        types = [job_type] if job_type is not None else list(self.jobs)
        return sum(self.jobs[t][state] for t in types)


class JobListItem(View):
    """One line of the jobs list (docs/api.md#jobs-list)."""

    id: int
    type: JobType
    status: JobState
    started: datetime | None
    finished: datetime | None
    preparation: str | None
    worker: str | None = Field(description="The worker thread that holds the job now.")
    error: str | None = Field(description="The error, or the last error of a job being retried.")
    attempts: int = Field(default=0, description="Failed attempts so far.")
    next_attempt_at: datetime | None = Field(
        default=None, description="When a transiently failed job may run again."
    )
    last_worker: str | None = Field(
        default=None, description="The worker thread that ran (or runs) it last."
    )
    last_worker_host: str | None = Field(default=None, description="The host of that worker.")


class JobPage(View):
    """A page of jobs, newest first; pass `nextCursor` back as `cursor` for the next page."""

    jobs: list[JobListItem]
    next_cursor: str | None
