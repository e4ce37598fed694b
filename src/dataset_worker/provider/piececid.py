"""Parsing a piece CID from text, with a message that says what is wrong with anything else.

A piece may be named by its v1 piece CID (baga6ea4sea…) or its FRC-0069 v2 piece CID
(bafkzcib…), which also binds the payload size: `parse_piece_ref` reads either. Kept free of
database and HTTP imports: both the server and the `fetch-piece` client use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from dataset_worker.content.cid import (
    FIL_COMMITMENT_UNSEALED,
    SHA2_256_TRUNC254_PADDED,
    cid_from_str,
    piece_cid,
)
from dataset_worker.content.piececid2 import (
    InvalidPieceCidV2,
    is_piece_cid_v2,
    parse_piece_cid_v2_bytes,
)
from dataset_worker.content.varint import decode_uvarint

_SHOWN_CHARS = 100  # an absurdly long id is cut in messages; the reply stays small
_CODEC_NAMES = {0x55: "raw", 0x70: "dag-pb", 0x71: "dag-cbor", FIL_COMMITMENT_UNSEALED: "piece"}
_HASH_NAMES = {0x12: "sha2-256", 0x00: "identity", SHA2_256_TRUNC254_PADDED: "piece"}


class InvalidPieceCid(ValueError):
    """The text is not a piece CID (fil-commitment-unsealed, sha2-256-trunc254-padded)."""


def shown(text: str) -> str:
    """`text` quoted for a message, cut to a sane length."""
    cut = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"
    return repr(cut)


_RULE = (
    "a piece CID is a base32 CIDv1: v1 (baga6ea4sea…) with codec fil-commitment-unsealed "
    "(0xf101) and multihash sha2-256-trunc254-padded (0x1012), or v2 (FRC-0069, bafkzcib…) with "
    "codec raw (0x55) and multihash fr32-sha256-trunc254-padbintree (0x1011)"
)


class _Sized(Protocol):
    @property
    def file_size(self) -> int: ...

    @property
    def piece_size(self) -> int: ...


Row = TypeVar("Row", bound=_Sized)


@dataclass(frozen=True, slots=True)
class PieceRef:
    """A piece as a request names it: the binary v1 piece CID (what the `cars` table holds) and,
    when named by a v2 CID, the payload and piece sizes that CID binds."""

    v1: bytes
    payload_size: int | None = None
    piece_size: int | None = None

    def matching(self, rows: Sequence[Row]) -> list[Row]:
        """The rows this reference names: all of them for a v1 CID; for a v2 CID only those
        whose file (the payload) and piece have its sizes."""
        if self.payload_size is None:
            return list(rows)
        return [
            row
            for row in rows
            if row.file_size == self.payload_size and row.piece_size == self.piece_size
        ]


def parse_piece_ref(text: str) -> PieceRef:
    """A v1 or v2 piece CID from text; InvalidPieceCid says what rule it breaks."""
    try:
        cid = cid_from_str(text)
    except ValueError as exc:
        raise InvalidPieceCid(f"{shown(text)} is not a piece CID ({exc}): {_RULE}") from None
    if is_piece_cid_v2(cid):
        try:
            info = parse_piece_cid_v2_bytes(cid, text[:_SHOWN_CHARS])
        except InvalidPieceCidV2 as exc:
            raise InvalidPieceCid(str(exc)) from None
        return PieceRef(piece_cid(info.root), info.payload_size, info.piece_size)
    return PieceRef(parse_piece_cid(text))


def parse_piece_cid(text: str) -> bytes:
    """The binary v1 piece CID of `text`; InvalidPieceCid says what rule it breaks."""
    rule = _RULE
    try:
        cid = cid_from_str(text)
    except ValueError as exc:
        raise InvalidPieceCid(f"{shown(text)} is not a piece CID ({exc}): {rule}") from None
    _version, pos = decode_uvarint(cid)
    codec, pos = decode_uvarint(cid, pos)
    hash_code, pos = decode_uvarint(cid, pos)
    digest_length, _ = decode_uvarint(cid, pos)
    if codec != FIL_COMMITMENT_UNSEALED or hash_code != SHA2_256_TRUNC254_PADDED:
        kind = f"codec {_name(_CODEC_NAMES, codec)}, multihash {_name(_HASH_NAMES, hash_code)}"
        raise InvalidPieceCid(f"{shown(text)} is not a piece CID ({kind}): {rule}")
    if digest_length != 32:
        raise InvalidPieceCid(
            f"{shown(text)} is not a piece CID (a {digest_length}-byte commitment, not 32): {rule}"
        )
    return cid


def _name(names: dict[int, str], code: int) -> str:
    return f"{names[code]} (0x{code:x})" if code in names else f"0x{code:x}"
