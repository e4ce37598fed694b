"""Finding preparations: one by name or numeric id (as every command names one), or all."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dataset_worker.db import Database
from dataset_worker.db.models import OutputAttachment, Preparation, SourceAttachment
from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.keys import MAX_ID as MAX_ID
from dataset_worker.prep.keys import MAX_KEY_LENGTH as MAX_KEY_LENGTH
from dataset_worker.prep.keys import checked_key, not_found
from dataset_worker.prep.keys import is_all_digits as is_all_digits
from dataset_worker.prep.views import PreparationView

_WITH_STORAGES = (
    selectinload(Preparation.source_attachments).selectinload(SourceAttachment.storage),
    selectinload(Preparation.output_attachments).selectinload(OutputAttachment.storage),
)


def find_preparation(session: Session, name_or_id: str | int) -> Preparation:
    """The preparation named `name_or_id`, or with that id when it is all digits.

    Names are never all digits (docs/formats.md#preparation-sizes), so the two cannot be confused. Attachments and their
    storages are loaded too. Raises NotFound naming what was asked for.
    """
    key = checked_key(name_or_id)
    query = select(Preparation).options(*_WITH_STORAGES)
    if is_all_digits(key):
        prep_id = int(key)
        query = query.where(Preparation.id == prep_id)
        prep = session.scalars(query).one_or_none() if prep_id <= MAX_ID else None
    else:
        prep = session.scalars(query.where(Preparation.name == key)).one_or_none()
    if prep is None:
        raise not_found(key)
    return prep


def single_source(prep: Preparation) -> SourceAttachment:
    """The one source attachment of `prep` (this project attaches exactly one per preparation)."""
    if len(prep.source_attachments) != 1:
        raise InvalidParameter(
            f'preparation "{prep.name}" has {len(prep.source_attachments)} source storages; '
            "exactly one is supported"
        )
    return prep.source_attachments[0]


def list_preparations(db: Database) -> list[PreparationView]:
    """Every preparation with its storages, oldest first."""
    with db.read() as session:
        preps = session.scalars(
            select(Preparation).options(*_WITH_STORAGES).order_by(Preparation.id)
        )
        return [PreparationView.from_model(prep) for prep in preps]
