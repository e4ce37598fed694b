"""What every job body loads first: its attachment, preparation and storages, and ownership checks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dataset_worker.db.models import (
    Directory,
    Job,
    JobState,
    OutputAttachment,
    Preparation,
    SourceAttachment,
)
from dataset_worker.storage import OutputStorage, SourceStorage, open_output, open_source
from dataset_worker.worker.runtime.context import JobCancelled, JobContext

DEFAULT_MIN_PIECE_SIZE = 1 << 20  # Preparation.GetMinPieceSize when min_piece_size is 0


class JobSetupError(Exception):
    """The job cannot run with its attachment as it is (missing rows, inline preparation …)."""


@dataclass(frozen=True)
class OutputTarget:
    """One output storage of the preparation: its `storages.id` and opened storage."""

    storage_id: int
    storage: OutputStorage


@dataclass(frozen=True)
class AttachmentSetup:
    """A source attachment with the preparation settings the job bodies use."""

    attachment_id: int
    preparation_id: int
    preparation_name: str
    max_size: int
    min_piece_size: int
    no_inline: bool
    no_dag: bool
    delete_after_export: bool
    source_storage_id: int
    source: SourceStorage
    outputs: list[OutputTarget]
    file_hash: bool = True  # pack records each file's sha256
    auto_rescan: bool = False  # a pack failing on a changed source file queues the scan

    @property
    def inline(self) -> bool:
        """No output storage: pieces are recorded in `car_blocks` only, no CAR file is written."""
        return not self.outputs

    def require_output(self) -> list[OutputTarget]:
        """The outputs (empty for an inline preparation); JobSetupError when a no-inline
        preparation has none, since its pieces would be kept nowhere."""
        if not self.outputs and self.no_inline:
            raise JobSetupError(
                f'preparation "{self.preparation_name}" has no output storage but is no-inline: '
                "its pieces would be kept nowhere; attach an output folder"
            )
        return self.outputs


def load_setup(session: Session, attachment_id: int) -> AttachmentSetup:
    """Load the attachment, its preparation and storages; JobSetupError if anything is missing."""
    attachment = session.scalar(
        select(SourceAttachment)
        .where(SourceAttachment.id == attachment_id)
        .options(
            selectinload(SourceAttachment.storage),
            selectinload(SourceAttachment.preparation)
            .selectinload(Preparation.output_attachments)
            .selectinload(OutputAttachment.storage),
        )
    )
    if attachment is None:
        raise JobSetupError(f"source attachment {attachment_id} does not exist any more")
    prep = attachment.preparation
    outputs = [
        OutputTarget(
            link.storage.id,
            open_output(link.storage.type, link.storage.path, link.storage.config),
        )
        for link in prep.output_attachments
    ]
    return AttachmentSetup(
        attachment_id=attachment.id,
        preparation_id=prep.id,
        preparation_name=prep.name,
        max_size=prep.max_size,
        min_piece_size=prep.min_piece_size or DEFAULT_MIN_PIECE_SIZE,
        no_inline=prep.no_inline,
        no_dag=prep.no_dag,
        delete_after_export=prep.delete_after_export,
        source_storage_id=attachment.storage.id,
        source=open_source(
            attachment.storage.type, attachment.storage.path, attachment.storage.config
        ),
        outputs=outputs,
        file_hash=prep.file_hash,
        auto_rescan=prep.auto_rescan,
    )


def root_directory(session: Session, attachment_id: int) -> Directory:
    """The attachment's root directory row (name "", no parent); JobSetupError if missing."""
    root = session.scalar(
        select(Directory)
        .where(Directory.attachment_id == attachment_id, Directory.parent_id.is_(None))
        .order_by(Directory.id)
        .limit(1)
    )
    if root is None:
        raise JobSetupError(
            f"source attachment {attachment_id} has no root directory row; recreate the "
            "preparation or attach the source again"
        )
    return root


def lock_own_job(session: Session, ctx: JobContext) -> None:
    """Lock the job row (FOR UPDATE on PostgreSQL; SQLite's write transaction already holds the
    database) and check it is still `processing` under this worker.

    Raises JobCancelled when it was paused or taken over, so the caller writes nothing.
    """
    row = session.execute(
        select(Job.state, Job.worker_id).where(Job.id == ctx.job_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise JobCancelled(ctx.job_id, "the job row was deleted")
    state, worker_id = row
    if state != JobState.PROCESSING or worker_id != ctx.worker_id:
        raise JobCancelled(
            ctx.job_id,
            f"the job is now {state} (worker {worker_id or 'none'}), not processing by "
            f"{ctx.worker_id}",
        )
