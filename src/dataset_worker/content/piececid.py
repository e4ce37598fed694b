"""Parsing a piece CID from text, with a message that says what is wrong with anything else.

Kept free of database and HTTP imports: both the server and the `fetch-piece` client use it.
"""

from __future__ import annotations

from dataset_worker.content.cid import (
    FIL_COMMITMENT_UNSEALED,
    SHA2_256_TRUNC254_PADDED,
    cid_from_str,
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


def parse_piece_cid(text: str) -> bytes:
    """The binary piece CID of `text`; InvalidPieceCid says what rule it breaks."""
    rule = (
        "a piece CID is a base32 CIDv1 (baga6ea4sea…) with codec fil-commitment-unsealed "
        "(0xf101) and multihash sha2-256-trunc254-padded (0x1012)"
    )
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
