from __future__ import annotations

import hashlib
import itertools
import json
import mmap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset_worker.content import _commp
from dataset_worker.content.cid import cid_to_str, piece_cid
from dataset_worker.content.commp import (
    MAX_PAYLOAD,
    MAX_PIECE_SIZE,
    MIN_PAYLOAD,
    CommP,
    CommPError,
    CommPResult,
    backends,
    commp_of,
    finalize,
    natural_piece_size,
    pad_commp,
)
from tests.unit import commp_reference as ref

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "commp.json").read_text())
BACKENDS = backends()
KIB = 1024
MIB = 1 << 20


def vector_input(kind: str, size: int) -> bytes:
    """The input of a vector, as the "generator" field of the vectors file describes."""
    if kind == "zeros":
        return bytes(size)
    return hashlib.shake_256(f"{VECTORS['seed']}:{size}".encode()).digest(size)


def commp_with(backend: str, data: bytes) -> CommPResult:
    calc = CommP(backend)
    calc.update(data)
    return calc.digest()


def cid_str(commitment: bytes) -> str:
    return cid_to_str(piece_cid(commitment))


# --- published and independently computed vectors -------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("size", "cid", "piece_size"),
    [
        (1024, "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy", 2 * KIB),
        (2048, "baga6ea4seaqarrd3hdxbhpcd6qnzcxao5wmrditaq2z62ysadp45lc4ndhp7mja", 4 * KIB),
    ],
)
def test_published_zero_vectors(backend: str, size: int, cid: str, piece_size: int) -> None:
    result = commp_with(backend, bytes(size))
    assert cid_str(result.commitment) == cid
    assert (result.payload_size, result.piece_size) == (size, piece_size)


def _vector_id(vector: dict[str, Any]) -> str:
    return f"{vector['input']}-{vector['size']}-min{vector['minPieceSize']}"


@pytest.fixture(scope="module")
def vector_inputs() -> Iterator[dict[tuple[str, int], bytes]]:
    cache: dict[tuple[str, int], bytes] = {}
    yield cache


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=_vector_id)
def test_npm_vectors(
    backend: str, vector: dict[str, Any], vector_inputs: dict[tuple[str, int], bytes]
) -> None:
    key = (vector["input"], vector["size"])
    data = vector_inputs.setdefault(key, vector_input(*key))
    result = commp_with(backend, data)
    assert result.piece_size == vector["naturalPieceSize"]
    if vector["minPieceSize"] is None:
        commitment, piece_size = result.commitment, result.piece_size
    else:
        commitment, piece_size = finalize(result, vector["minPieceSize"])
    assert commitment.hex() == vector["commP"]
    assert cid_str(commitment) == vector["pieceCid"]
    assert piece_size == vector["pieceSize"]


def test_vectors_cover_the_required_sizes() -> None:
    sizes = {v["size"] for v in VECTORS["vectors"] if v["input"] == "random"}
    assert {65, 127, 128, 254, 1000, MIB, MIB + 1, 10 * MIB} <= sizes
    assert any(v["minPieceSize"] for v in VECTORS["vectors"])


# --- the C core against the pure-Python reference -------------------------------------------


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=MIN_PAYLOAD, max_size=4000))
def test_matches_reference_small(data: bytes) -> None:
    want = ref.commp(data)
    for backend in BACKENDS:
        result = commp_with(backend, data)
        assert (result.commitment, result.piece_size) == want


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    # Around the 256-leaf batch (8128 input bytes) and powers of two of the tree.
    "size",
    [8127, 8128, 8129, 2 * 8128, 3 * 8128 + 77, 127 * 1024, 127 * 1024 + 1, 600_001],
)
def test_matches_reference_larger(backend: str, size: int) -> None:
    data = hashlib.shake_256(b"larger:%d" % size).digest(size)
    result = commp_with(backend, data)
    assert (result.commitment, result.piece_size) == ref.commp(data)


def test_zero_roots_match_reference() -> None:
    zero = bytes(32)
    for level in range(_commp.MAX_LEVELS + 1):
        assert _commp.zero_root(level) == zero
        zero = ref.node_hash(zero, zero)


# --- streaming ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=MIN_PAYLOAD, max_size=20_000),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=12),
    backend=st.sampled_from(BACKENDS),
)
def test_streaming_split_points_equal_one_shot(data: bytes, cuts: list[int], backend: str) -> None:
    calc = CommP(backend)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    for start, end in itertools.pairwise(bounds):
        calc.update(memoryview(data)[start:end])
    assert calc.digest() == commp_with(backend, data)
    assert calc.payload_size == len(data)


def test_update_accepts_bytes_bytearray_memoryview() -> None:
    data = hashlib.shake_256(b"buffers").digest(5000)
    calc = CommP()
    calc.update(data[:1000])
    calc.update(bytearray(data[1000:3000]))
    calc.update(memoryview(data)[3000:])
    calc.update(b"")
    assert calc.digest() == commp_of(data)


def test_digest_keeps_state() -> None:
    data = hashlib.shake_256(b"keep").digest(30_000)
    calc = CommP()
    calc.update(data[:10_000])
    first = calc.digest()
    calc.update(data[10_000:])
    assert first == commp_of(data[:10_000])
    assert calc.digest() == commp_of(data)


# --- sizes and padding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "piece"),
    [(65, 128), (127, 128), (128, 256), (254, 256), (255, 512), (1016, 1024), (1017, 2048)],
)
def test_natural_piece_size(payload: int, piece: int) -> None:
    assert natural_piece_size(payload) == piece
    assert ref.natural_piece_size(payload) == piece


def test_natural_piece_size_limits() -> None:
    assert natural_piece_size(MAX_PAYLOAD) == MAX_PIECE_SIZE
    with pytest.raises(CommPError, match="from 65 to"):
        natural_piece_size(MAX_PAYLOAD + 1)
    with pytest.raises(CommPError, match="from 65 to"):
        natural_piece_size(64)


@pytest.mark.parametrize(("from_size", "to_size"), [(128, 128), (128, 256), (2048, MIB)])
def test_pad_commp_matches_reference(from_size: int, to_size: int) -> None:
    commitment = hashlib.sha256(b"pad").digest()[:31] + b"\x01"
    assert pad_commp(commitment, from_size, to_size) == ref.pad(commitment, from_size, to_size)


def test_pad_commp_equals_commp_of_zero_extended_payload() -> None:
    # A piece padded with zeros has the commitment of its data followed by zero bytes.
    data = hashlib.shake_256(b"zero-extended").digest(1000)
    padded = data + bytes(8 * 1024 // 128 * 127 - len(data))
    result = commp_of(data)
    assert pad_commp(result.commitment, result.piece_size, 8 * 1024) == commp_of(padded).commitment


def test_pad_commp_vectors() -> None:
    for vector in VECTORS["vectors"]:
        if vector["minPieceSize"] is None or vector["size"] > MIB:
            continue
        natural = commp_of(vector_input(vector["input"], vector["size"]))
        target = max(natural.piece_size, vector["minPieceSize"])
        padded = pad_commp(natural.commitment, natural.piece_size, target)
        assert padded.hex() == vector["commP"]


def test_finalize() -> None:
    result = commp_of(bytes(1024))
    assert finalize(result, 1024) == (result.commitment, 2048)
    assert finalize(result, 2048) == (result.commitment, 2048)
    commitment, size = finalize(result, MIB)
    assert size == MIB
    assert commitment == ref.pad(result.commitment, 2048, MIB)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((b"x" * 31, 128, 256), CommPError, "32 bytes"),
        (("x" * 32, 128, 256), TypeError, "commitment must be bytes"),
        ((bytes(32), 100, 256), CommPError, "from_size must be a power of two"),
        ((bytes(32), 64, 256), CommPError, "from_size must be a power of two from 128"),
        ((bytes(32), 256, 128), CommPError, "must not be smaller"),
        ((bytes(32), 128, 2 * MAX_PIECE_SIZE), CommPError, "to_size must be a power of two"),
        ((bytes(32), -128, 256), CommPError, "from_size must not be negative"),
        ((bytes(32), 128.0, 256), TypeError, "from_size must be an int"),
        ((bytes(32), True, 256), TypeError, "from_size must be an int"),
    ],
)
def test_pad_commp_rejects(args: tuple[Any, ...], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        pad_commp(*args)


@pytest.mark.parametrize("bad", [0, 64, 1000, -1024])
def test_finalize_rejects_bad_min_piece_size(bad: int) -> None:
    with pytest.raises(CommPError, match="min_piece_size"):
        finalize(commp_of(bytes(100)), bad)


# --- bounds and types -----------------------------------------------------------------------


def test_too_short_input_is_refused_at_digest() -> None:
    calc = CommP()
    calc.update(bytes(64))
    with pytest.raises(CommPError, match="at least 65 bytes"):
        calc.digest()
    calc.update(b"\0")
    assert calc.digest().piece_size == 128
    with pytest.raises(CommPError, match="got 0"):
        CommP().digest()


def test_commp_error_is_a_value_error() -> None:
    assert issubclass(CommPError, ValueError)


@pytest.fixture
def sparse_buffer(tmp_path: Path) -> Iterator[mmap.mmap]:
    """A read-only mapping of a sparse file just over the payload limit (no RAM, no disk)."""
    path = tmp_path / "sparse"
    with path.open("wb") as f:
        f.truncate(MAX_PAYLOAD + 1)
    with path.open("rb") as r, mmap.mmap(r.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        yield mapped


def test_too_long_input_is_refused_before_hashing(sparse_buffer: mmap.mmap) -> None:
    calc = CommP()
    # A view, released before the fixture closes the mapping: update() takes bytes-like types.
    with memoryview(sparse_buffer) as whole, pytest.raises(CommPError, match="64 GiB piece limit"):
        calc.update(whole)
    assert calc.payload_size == 0
    calc.update(bytes(100))
    with memoryview(sparse_buffer) as view:
        with pytest.raises(CommPError, match=f"at most {MAX_PAYLOAD} bytes"):
            calc.update(view[: MAX_PAYLOAD - 99])
    assert calc.payload_size == 100
    assert calc.digest() == commp_of(bytes(100))


@pytest.mark.parametrize("bad", ["text" * 30, 123, None, [1, 2, 3]])
def test_update_rejects_non_buffers(bad: Any) -> None:
    with pytest.raises(TypeError, match="bytes, bytearray or memoryview"):
        CommP().update(bad)


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match='unknown or unavailable commP backend "nope"'):
        CommP("nope")


def test_backend_names() -> None:
    assert BACKENDS[-1] == "openssl"
    assert CommP().backend == BACKENDS[0]
    assert CommP("openssl").backend == "openssl"


# --- threads --------------------------------------------------------------------------------


def test_two_threads_with_their_own_hashers() -> None:
    inputs = [hashlib.shake_256(b"thread %d" % i).digest(3 * MIB + i) for i in range(2)]
    expected = [commp_of(data) for data in inputs]
    results: list[CommPResult | None] = [None, None]

    def work(i: int) -> None:
        calc = CommP()
        for start in range(0, len(inputs[i]), 64 * KIB):
            calc.update(inputs[i][start : start + 64 * KIB])
        results[i] = calc.digest()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


def test_one_hasher_shared_by_two_threads_stays_consistent() -> None:
    # Identical whole-chunk pieces: any interleaving of whole update() calls gives one stream,
    # so a torn update (no lock) would show as a different commitment.
    piece = hashlib.shake_256(b"shared").digest(127 * 512)
    rounds = 40
    calc = CommP()

    def work() -> None:
        for _ in range(rounds):
            calc.update(piece)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calc.payload_size == 2 * rounds * len(piece)
    assert calc.digest() == commp_of(piece * (2 * rounds))


def test_update_releases_the_gil() -> None:
    data = bytes(48 * MIB)
    window: list[float] = []
    ticks: list[float] = []
    done = threading.Event()

    def work() -> None:
        calc = CommP()
        start = time.perf_counter()
        calc.update(data)
        window.extend((start, time.perf_counter()))
        done.set()

    thread = threading.Thread(target=work)
    thread.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
    thread.join()
    start, end = window
    # While C holds the GIL no Python line of this thread can run; released, it runs freely.
    middle = [t for t in ticks if start + 0.25 * (end - start) < t < start + 0.75 * (end - start)]
    assert middle, f"no progress during a {end - start:.3f} s update: the GIL was held"
