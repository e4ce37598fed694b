"""Queries over a source's `directories` rows that more than one layer asks."""

from __future__ import annotations

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from dataset_worker.db.models import Directory


def dag_behind(session: Session, attachment_id: int) -> bool:
    """Some folder has content (a non-empty CID) that no DAG piece holds yet: a rescan or a
    later pack changed it, so a daggen run has something to export. Daggen skips folders
    without a CID, so those never count."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Directory.attachment_id == attachment_id,
                    Directory.exported.is_(False),
                    Directory.cid.is_not(None),
                    func.length(Directory.cid) > 0,
                )
            )
        )
    )
