"""The pieces a deal can be made for: a preparation's CAR files, with PieceCID v1 and v2."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db.models import Car, Preparation
from dataset_worker.deals.errors import DealNotFound, InvalidDealRequest

MAX_ID = 2**63 - 1
PLACEHOLDERS = ("{pieceCid}", "{pieceCidV2}")
PROVIDER_PATTERN = re.compile(r"[ft]0[0-9]{1,19}")


@dataclass(frozen=True)
class PieceRef:
    """One piece: its CAR row, both CIDs and sizes (payload: the bytes served, padding included)."""

    car_id: int
    piece_cid: str
    piece_cid_v2: str
    piece_size: int
    payload_size: int

    def url(self, template: str) -> str:
        """The download URL from a template with {pieceCid} (v1) or {pieceCidV2}."""
        return template.replace("{pieceCidV2}", self.piece_cid_v2).replace(
            "{pieceCid}", self.piece_cid
        )


def find_preparation(session: Session, name_or_id: str) -> Preparation:
    """The preparation with this name, or this id when all digits; DealNotFound otherwise."""
    key = name_or_id.strip()
    if not key or "\x00" in key:
        raise InvalidDealRequest(
            "a preparation name or id is required (and cannot hold a NUL character)",
            field="preparation",
        )
    if key.isascii() and key.isdigit():
        prep = session.get(Preparation, int(key)) if int(key) <= MAX_ID else None
    else:
        prep = session.scalars(select(Preparation).where(Preparation.name == key)).one_or_none()
    if prep is None:
        raise DealNotFound(f'preparation "{name_or_id}" not found')
    return prep


def piece_cid_v2(piece_cid: str, payload_size: int, piece_size: int) -> str | None:
    """PieceCID v2 (FRC-0069) of a v1 piece CID with its payload and padded sizes; None when the
    sizes cannot make one (a row this project did not write)."""
    from dataset_worker.content.piececid2 import InvalidPieceCidV2
    from dataset_worker.content.piececid2 import piece_cid_v2 as convert

    try:
        return convert(piece_cid, payload_size, piece_size)
    except InvalidPieceCidV2:
        return None


def preparation_pieces(
    session: Session, prep: Preparation, only: list[str] | None = None
) -> list[PieceRef]:
    """The pieces of `prep` by id (data pieces then the DAG piece) that can be proposed (a row
    whose sizes make no PieceCID v2 is left out); `only` keeps just the listed v1 piece CIDs,
    each of which must be one of them."""
    cars = session.scalars(select(Car).where(Car.preparation_id == prep.id).order_by(Car.id)).all()
    refs, unusable = [], []
    for car in cars:
        v1 = cid_to_str(car.piece_cid)
        v2 = piece_cid_v2(v1, car.file_size, car.piece_size)
        if v2 is None:
            unusable.append(v1)  # Market 2.0 needs the v2 CID: such a piece cannot be proposed
            continue
        refs.append(PieceRef(car.id, v1, v2, car.piece_size, car.file_size))
    if not only:
        return refs
    for cid in only:
        if cid in unusable:
            raise InvalidDealRequest(
                f"--piece {cid}: its recorded sizes make no PieceCID v2, which Curio's "
                "Market 2.0 needs",
                field="pieces",
            )
    by_cid = {ref.piece_cid: ref for ref in refs}
    missing = [cid for cid in only if cid not in by_cid]
    if missing:
        raise InvalidDealRequest(
            f'--piece {missing[0]} is not a piece of preparation "{prep.name}"', field="pieces"
        )
    return [by_cid[cid] for cid in dict.fromkeys(only)]


def check_url_template(template: str) -> str:
    """The template, when it is an http(s) URL with a piece placeholder; else InvalidDealRequest."""
    text = template.strip()
    if any(ord(c) < 33 or c == "\x7f" for c in text):
        raise InvalidDealRequest(
            f"--url-template must not contain spaces or control characters, got {template!r}",
            field="urlTemplate",
        )
    if not text.startswith(("http://", "https://")):
        raise InvalidDealRequest(
            f'--url-template must be an http:// or https:// URL, got "{template}"',
            field="urlTemplate",
        )
    if not any(p in text for p in PLACEHOLDERS):
        raise InvalidDealRequest(
            "--url-template must contain {pieceCid} or {pieceCidV2}, e.g. "
            "http://host:7777/piece/{pieceCid}",
            field="urlTemplate",
        )
    return text
