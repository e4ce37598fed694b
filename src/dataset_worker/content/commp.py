"""Filecoin piece commitment (commP), piece sizes and padding (docs/formats.md#piece-size-and-padding).

The hashing runs in the C core (`_commp`), which releases the GIL; this module checks sizes,
names the rules in its errors and gives the results a type. Byte-compatible with
go-fil-commp-hashhash `Calc` and `PadCommP`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataset_worker.content import _commp
from dataset_worker.content._commp import CommPError

__all__ = [
    "MAX_PAYLOAD",
    "MAX_PIECE_SIZE",
    "MIN_PAYLOAD",
    "MIN_PIECE_SIZE",
    "CommP",
    "CommPError",
    "CommPResult",
    "backend",
    "backends",
    "commp_of",
    "finalize",
    "natural_piece_size",
    "pad_commp",
]

MIN_PAYLOAD = 65
MAX_PAYLOAD = 2**31 * 32 // 128 * 127
MAX_PIECE_SIZE = 64 * 2**30
MIN_PIECE_SIZE = 128
_NODE_SIZE = 32

if (_commp.MIN_PAYLOAD, _commp.MAX_PAYLOAD) != (MIN_PAYLOAD, MAX_PAYLOAD):
    raise ImportError("the _commp extension is out of date: rebuild it (pip install -e .)")

Data = bytes | bytearray | memoryview


@dataclass(frozen=True)
class CommPResult:
    """A raw commitment with the payload it covers and its natural padded piece size."""

    commitment: bytes
    payload_size: int
    piece_size: int


class CommP:
    """Streaming commP calculator, used like hashlib: `update()` any number of times, then
    `digest()`. Memory stays constant whatever the size; `update()` hashes without the GIL, and
    one object may be shared between threads (calls are serialized).

    `backend` picks the SHA-256 implementation ("sha-ni" or "openssl"); default: the fastest.
    """

    __slots__ = ("_hasher",)

    def __init__(self, backend: str | None = None) -> None:
        self._hasher = _commp.Hasher(backend)

    def update(self, data: Data) -> None:
        """Append bytes; CommPError once the total would pass MAX_PAYLOAD (nothing is taken)."""
        self._hasher.update(data)

    def digest(self) -> CommPResult:
        """Commitment of the bytes so far; CommPError below MIN_PAYLOAD. The state is kept."""
        commitment, payload_size = self._hasher.digest()
        return CommPResult(commitment, payload_size, natural_piece_size(payload_size))

    @property
    def payload_size(self) -> int:
        """Bytes accepted so far."""
        return self._hasher.payload_size

    @property
    def backend(self) -> str:
        """The SHA-256 backend this calculator uses."""
        return self._hasher.backend


def backend() -> str:
    """The default SHA-256 backend: "sha-ni" when the CPU has SHA extensions, else "openssl"."""
    return _commp.backend()


def backends() -> tuple[str, ...]:
    """Every backend usable on this machine, the default first."""
    return _commp.backends()


def commp_of(data: Data) -> CommPResult:
    """commP of one buffer."""
    calc = CommP()
    calc.update(data)
    return calc.digest()


def natural_piece_size(payload_size: int) -> int:
    """Smallest power of two >= the Fr32-expanded size `ceil(payload_size/127)*128`."""
    _check_int("payload_size", payload_size)
    if not MIN_PAYLOAD <= payload_size <= MAX_PAYLOAD:
        raise CommPError(
            f"payload_size must be from {MIN_PAYLOAD} to {MAX_PAYLOAD} bytes "
            f"(the commP input limits), got {payload_size}"
        )
    expanded = (payload_size + 126) // 127 * 128
    return 1 << (expanded - 1).bit_length()


def pad_commp(commitment: bytes, from_size: int, to_size: int) -> bytes:
    """Lift the commitment of a `from_size` piece to a `to_size` piece whose rest is zeros.

    Sizes are padded piece sizes: powers of two from 128 to MAX_PIECE_SIZE, to_size >= from_size.
    Each doubling hashes the commitment with the all-zero subtree root of its level (PadCommP).
    """
    if not isinstance(commitment, bytes | bytearray | memoryview):
        raise TypeError(f"commitment must be bytes, not {type(commitment).__name__}")
    if len(commitment) != _NODE_SIZE:
        raise CommPError(f"commitment must be {_NODE_SIZE} bytes, got {len(commitment)}")
    _check_piece_size("from_size", from_size)
    _check_piece_size("to_size", to_size)
    if to_size < from_size:
        raise CommPError(f"to_size ({to_size}) must not be smaller than from_size ({from_size})")
    return _commp.pad(bytes(commitment), _level(from_size), _level(to_size))


def finalize(result: CommPResult, min_piece_size: int) -> tuple[bytes, int]:
    """(commitment, piece size) for a piece of at least `min_piece_size` bytes.

    The piece size is max(natural size, min_piece_size); when the minimum is larger the
    commitment is padded to it (Singularity `pack.GetCommp`). `min_piece_size` must be a power
    of two from 128 to MAX_PIECE_SIZE.
    """
    _check_piece_size("min_piece_size", min_piece_size)
    if min_piece_size <= result.piece_size:
        return result.commitment, result.piece_size
    return pad_commp(result.commitment, result.piece_size, min_piece_size), min_piece_size


def _check_int(name: str, value: object) -> None:
    # bool is an int subclass, but True as a size is always a bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise CommPError(f"{name} must not be negative, got {value}")


def _check_piece_size(name: str, size: int) -> None:
    _check_int(name, size)
    if size < MIN_PIECE_SIZE or size > MAX_PIECE_SIZE or size & (size - 1):
        raise CommPError(
            f"{name} must be a power of two from {MIN_PIECE_SIZE} to {MAX_PIECE_SIZE} bytes "
            f"(a padded piece size), got {size}"
        )


def _level(piece_size: int) -> int:
    """Tree level of a piece's root: log2 of its number of 32-byte leaves."""
    return piece_size.bit_length() - 1 - (_NODE_SIZE.bit_length() - 1)
