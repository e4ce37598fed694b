"""PieceCID v2 (FRC-0069): a piece CID that also carries the payload size.

A v2 piece CID is a CIDv1 with codec raw (0x55) and multihash fr32-sha256-trunc254-padbintree
(0x1011), whose digest is

    uvarint(padding) ‖ height (1 byte) ‖ root (32 bytes)

where `root` is the commP of a v1 piece CID, `height` the tree height (piece size = 32 · 2^height)
and `padding` the zero bytes that fill the payload up to the piece's unpadded size
(piece size · 127/128). So the payload size is `piece size · 127/128 - padding`; zeros added to
reach a minimum piece size count as padding. Everything here is arithmetic on the v1 CID and the
two sizes: no pass over the data. See docs/formats.md#piececid-v2.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataset_worker.content.cid import (
    FIL_COMMITMENT_UNSEALED,
    PIECE_PREFIX,
    RAW,
    SHA2_256_TRUNC254_PADDED,
    cid_from_str,
    cid_to_str,
    piece_cid,
)
from dataset_worker.content.varint import decode_uvarint, encode_uvarint

FR32_SHA256_TRUNC254_PADBINTREE = 0x1011
MIN_PIECE_SIZE = 128  # the smallest piece commP makes (65 to 127 payload bytes)
MAX_HEIGHT = 255  # one byte
MAX_PADDING_VARINT = 9  # multiformats' practical limit for a varint
_V2_PREFIX = b"\x01" + encode_uvarint(RAW) + encode_uvarint(FR32_SHA256_TRUNC254_PADBINTREE)
_MAX_PIECE_SIZE = 32 << MAX_HEIGHT
# The CID's prefix and digest length, by the length of the padding varint: for a padding of up
# to 9 varint bytes the digest (padding, height, root) is at most 42 bytes, a one-byte length.
_V2_HEADS = tuple(_V2_PREFIX + bytes((n + 33,)) for n in range(MAX_PADDING_VARINT + 1))
_BYTE = tuple(bytes((n,)) for n in range(256))
_V1_SIZE = len(PIECE_PREFIX) + 32
_RULE = (
    "a v2 piece CID is a base32 CIDv1 (bafkzcib…) with codec raw (0x55) and multihash "
    "fr32-sha256-trunc254-padbintree (0x1011) whose digest is uvarint(padding) ‖ height ‖ 32-byte root"
)


class InvalidPieceCidV2(ValueError):
    """The text or the sizes do not make a v2 piece CID; the message names the rule."""


@dataclass(frozen=True, slots=True)
class PieceV2Info:
    """What a v2 piece CID says: the commP root, the payload and piece sizes, and the v1 CID."""

    root: bytes  # the 32-byte commitment (commP)
    payload_size: int
    piece_size: int
    v1: str

    @property
    def padding(self) -> int:
        """Zero bytes between the payload and the piece's unpadded size."""
        return unpadded_size(self.piece_size) - self.payload_size

    @property
    def height(self) -> int:
        """The tree height: piece size = 32 · 2^height."""
        return self.piece_size.bit_length() - 1 - 5


def unpadded_size(piece_size: int) -> int:
    """The bytes a piece of `piece_size` holds before Fr32 expansion (piece size · 127/128)."""
    return piece_size - piece_size // 128


def piece_cid_v2_bytes(root: bytes, payload_size: int, piece_size: int) -> bytes:
    """Binary v2 piece CID of a 32-byte commP and the two sizes; InvalidPieceCidV2 if they
    cannot belong together."""
    if len(root) != 32:
        raise InvalidPieceCidV2(f"a piece commitment is 32 bytes, got {len(root)}")
    # The sizes of every row this project writes pass this quick test; the rest get the full
    # check, which names the broken rule (or lets an int subclass through, as before).
    if not (
        type(payload_size) is int
        and type(piece_size) is int
        and MIN_PIECE_SIZE <= piece_size <= _MAX_PIECE_SIZE
        and not piece_size & (piece_size - 1)
        and 0 <= payload_size <= piece_size - piece_size // 128
    ):
        _check_sizes(payload_size, piece_size)
    padding = encode_uvarint(piece_size - piece_size // 128 - payload_size)
    height = piece_size.bit_length() - 1 - 5
    # `prep pieces` makes one per row: the parts are ready-made bytes, joined once.
    if len(padding) < len(_V2_HEADS):
        head = _V2_HEADS[len(padding)]
    else:  # a padding past 2**63 (a piece size no one makes): the digest length is a varint
        head = _V2_PREFIX + encode_uvarint(len(padding) + 33)
    return b"".join((head, padding, _BYTE[height], root))


def piece_cid_v2(piece_cid_v1: str, payload_size: int, piece_size: int) -> str:
    """The v2 piece CID (string) of a v1 piece CID, its payload size (the bytes of the piece
    file before any padding that is not in it) and its piece size."""
    return cid_to_str(piece_cid_v2_bytes(_v1_root(piece_cid_v1), payload_size, piece_size))


def piece_cid_v2_from_v1_bytes(piece_cid_v1: bytes, payload_size: int, piece_size: int) -> str:
    """As piece_cid_v2, from a binary v1 piece CID (as the `cars` table stores it)."""
    if len(piece_cid_v1) == _V1_SIZE and piece_cid_v1.startswith(PIECE_PREFIX):
        # `prep pieces` makes one per row: no round trip through the base32 text.
        return cid_to_str(piece_cid_v2_bytes(piece_cid_v1[-32:], payload_size, piece_size))
    return piece_cid_v2(cid_to_str(piece_cid_v1), payload_size, piece_size)


def parse_piece_cid_v2(cid: str) -> PieceV2Info:
    """The root, sizes and v1 CID of a v2 piece CID; InvalidPieceCidV2 names the broken rule."""
    try:
        raw = cid_from_str(cid)
    except ValueError as exc:
        raise InvalidPieceCidV2(f"{cid[:100]!r} is not a v2 piece CID ({exc}): {_RULE}") from None
    return parse_piece_cid_v2_bytes(raw, cid)


def parse_piece_cid_v2_bytes(raw: bytes, text: str | None = None) -> PieceV2Info:
    """As parse_piece_cid_v2, for a binary CID (already checked to be a well-formed CIDv1)."""
    shown = repr((text if text is not None else cid_to_str(raw))[:100])
    _version, pos = decode_uvarint(raw)
    codec, pos = decode_uvarint(raw, pos)
    hash_code, pos = decode_uvarint(raw, pos)
    if codec != RAW or hash_code != FR32_SHA256_TRUNC254_PADBINTREE:
        raise InvalidPieceCidV2(
            f"{shown} is not a v2 piece CID (codec 0x{codec:x}, multihash 0x{hash_code:x}): {_RULE}"
        )
    length, pos = decode_uvarint(raw, pos)
    digest = raw[pos:]
    try:
        padding, at = decode_uvarint(digest)
    except ValueError as exc:
        raise InvalidPieceCidV2(f"{shown}: bad padding varint ({exc}): {_RULE}") from None
    if at > MAX_PADDING_VARINT or len(digest) != at + 1 + 32:
        raise InvalidPieceCidV2(
            f"{shown}: a {length}-byte digest does not hold padding, height and a 32-byte root: "
            f"{_RULE}"
        )
    height = digest[at]
    if height < 2:  # below 128 bytes there is no piece (commP needs 65 payload bytes)
        raise InvalidPieceCidV2(f"{shown}: height {height} is below 2 (a 128-byte piece)")
    piece_size = 32 << height
    payload_size = unpadded_size(piece_size) - padding
    if payload_size < 0:
        raise InvalidPieceCidV2(
            f"{shown}: padding {padding} is more than the {unpadded_size(piece_size)} bytes a "
            f"{piece_size}-byte piece holds"
        )
    root = bytes(digest[at + 1 :])
    return PieceV2Info(root, payload_size, piece_size, cid_to_str(piece_cid(root)))


def is_piece_cid_v2(raw: bytes) -> bool:
    """Whether a binary CID has the v2 prefix (raw codec, fr32-sha256-trunc254-padbintree)."""
    return raw.startswith(_V2_PREFIX)


def _v1_root(text: str) -> bytes:
    rule = (
        "a v1 piece CID is a base32 CIDv1 (baga6ea4sea…) with codec fil-commitment-unsealed "
        "(0xf101) and multihash sha2-256-trunc254-padded (0x1012)"
    )
    try:
        raw = cid_from_str(text)
    except ValueError as exc:
        raise InvalidPieceCidV2(f"{text[:100]!r} is not a v1 piece CID ({exc}): {rule}") from None
    _version, pos = decode_uvarint(raw)
    codec, pos = decode_uvarint(raw, pos)
    hash_code, pos = decode_uvarint(raw, pos)
    length, pos = decode_uvarint(raw, pos)
    if codec != FIL_COMMITMENT_UNSEALED or hash_code != SHA2_256_TRUNC254_PADDED or length != 32:
        raise InvalidPieceCidV2(f"{text[:100]!r} is not a v1 piece CID: {rule}")
    return raw[pos:]


def _check_sizes(payload_size: int, piece_size: int) -> None:
    for name, value in (("payload_size", payload_size), ("piece_size", piece_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidPieceCidV2(f"{name} must be an integer, got {value!r}")
    if piece_size < MIN_PIECE_SIZE or piece_size & (piece_size - 1):
        raise InvalidPieceCidV2(
            f"piece_size must be a power of two of at least {MIN_PIECE_SIZE}, got {piece_size}"
        )
    if piece_size.bit_length() - 1 - 5 > MAX_HEIGHT:
        raise InvalidPieceCidV2(f"piece_size {piece_size} is above 32 · 2^{MAX_HEIGHT}")
    if not 0 <= payload_size <= unpadded_size(piece_size):
        raise InvalidPieceCidV2(
            f"payload_size must be between 0 and {unpadded_size(piece_size)} (piece size "
            f"{piece_size} · 127/128), got {payload_size}"
        )
