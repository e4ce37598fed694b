"""CARv1 header and block framing (docs/formats.md#car-framing), lazy root (docs/formats.md#car-framing), tee, and the reader."""

from __future__ import annotations

import hashlib
import io

import pytest

from dataset_worker.content.car import CarReader, CarWriter, car_header, iter_car_blocks
from dataset_worker.content.cid import EMPTY_FILE_CID, dag_pb_cid, raw_cid
from dataset_worker.content.varint import encode_uvarint

HELLO = raw_cid(b"hello")


def test_header_is_59_bytes_of_dag_cbor_for_a_36_byte_cid() -> None:
    header = car_header(HELLO)
    assert len(header) == 59
    expected = (
        b"\x3a\xa2\x65roots\x81\xd8\x2a\x58\x25\x00" + HELLO + b"\x67version\x01"
    )  # varint 58, map(2), "roots", [tag 42(bytes(37))], "version", 1
    assert header == expected


def test_header_reads_back() -> None:
    reader = CarReader(io.BytesIO(car_header(HELLO)))
    assert (reader.roots, reader.version) == ([HELLO], 1)
    assert list(reader) == []


def test_hello_block_is_40_bytes() -> None:
    # Singularity's TestWriteCarBlock uses go-block-format's NewBlock, which makes a CIDv0
    # (34 bytes): varint 0x27 + CID + "hello" = 40 bytes.
    v0 = b"\x12\x20" + hashlib.sha256(b"hello").digest()
    out = io.BytesIO()
    writer = CarWriter(out, HELLO)
    location = writer.write_block(v0, b"hello")
    assert (location.car_offset, location.car_block_length, location.varint) == (59, 40, b"\x27")
    assert out.getvalue()[59:] == b"\x27" + v0 + b"hello"
    assert writer.bytes_written == 99


def test_raw_cidv1_block_framing() -> None:
    out = io.BytesIO()
    location = CarWriter(out, HELLO).write_block(HELLO, b"hello")
    assert (location.car_block_length, location.varint) == (42, b"\x29")
    assert out.getvalue()[59:] == b"\x29" + HELLO + b"hello"


def test_explicit_root_writes_the_header_at_once() -> None:
    out = io.BytesIO()
    writer = CarWriter(out, HELLO)
    assert writer.bytes_written == 59
    assert out.getvalue() == car_header(HELLO)


def test_lazy_root_is_the_first_block() -> None:
    out = io.BytesIO()
    writer = CarWriter(out)
    assert (writer.root, writer.bytes_written, out.getvalue()) == (None, 0, b"")
    first = writer.write_block(EMPTY_FILE_CID, b"")
    writer.write_block(HELLO, b"hello")
    assert writer.root == EMPTY_FILE_CID
    assert first.car_offset == 59
    assert first.car_block_length == 37  # an empty block is its varint 0x24 plus the CID
    reader = CarReader(io.BytesIO(out.getvalue()))
    assert reader.roots == [EMPTY_FILE_CID]
    blocks = list(reader)
    assert [(b.cid, b.data, b.car_offset) for b in blocks] == [
        (EMPTY_FILE_CID, b"", 59),
        (HELLO, b"hello", 96),
    ]


def test_large_block_has_a_multibyte_varint() -> None:
    data = bytes(1 << 20)
    cid = raw_cid(data)
    out = io.BytesIO()
    location = CarWriter(out, cid).write_block(cid, data)
    assert location.varint == b"\xa4\x80\x40"  # 36 + 1 MiB = 1048612
    assert location.car_block_length == 3 + 36 + (1 << 20)


def test_tee_sees_every_byte_in_order() -> None:
    out = io.BytesIO()
    digest = hashlib.sha256()
    writer = CarWriter(out, tee=digest.update)
    for payload in (b"a", b"bc" * 1000, b""):
        writer.write_block(raw_cid(payload), payload)
    assert digest.digest() == hashlib.sha256(out.getvalue()).digest()
    assert writer.bytes_written == len(out.getvalue())


class _RecordingWriter(io.RawIOBase):
    """A raw sink that accepts at most `limit` bytes per call and records what it was given."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.calls: list[memoryview] = []

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        view = memoryview(b)  # type: ignore[arg-type]
        self.calls.append(view)
        taken = view[: self.limit]
        self.data += taken
        return len(taken)


def test_partial_writes_are_completed() -> None:
    sink = _RecordingWriter(limit=7)
    writer = CarWriter(sink, HELLO)  # type: ignore[arg-type]
    writer.write_block(HELLO, b"hello world")
    expected = car_header(HELLO) + b"\x2f" + HELLO + b"hello world"
    assert bytes(sink.data) == expected


def test_payload_is_written_without_copying_it() -> None:
    sink = _RecordingWriter(limit=1 << 30)
    teed: list[memoryview] = []
    payload = bytearray(b"x" * 4096)
    writer = CarWriter(sink, HELLO, tee=lambda chunk: teed.append(memoryview(chunk)))  # type: ignore[arg-type]
    writer.write_block(raw_cid(payload), payload)
    # Header, then prefix, then the caller's own buffer handed straight through.
    assert [call.nbytes for call in sink.calls] == [59, 2 + 36, 4096]
    assert sink.calls[-1].obj is payload
    assert teed[-1].obj is payload


def test_reader_accepts_trailing_zero_padding() -> None:
    out = io.BytesIO()
    CarWriter(out).write_block(HELLO, b"hello")
    reader = CarReader(io.BytesIO(out.getvalue() + bytes(1000)))
    assert [block.cid for block in reader] == [HELLO]
    assert reader.padding == 1000


def test_reader_rejects_nonzero_padding() -> None:
    out = io.BytesIO()
    CarWriter(out).write_block(HELLO, b"hello")
    with pytest.raises(ValueError, match="non-zero byte in trailing padding"):
        list(iter_car_blocks(io.BytesIO(out.getvalue() + b"\x00\x00\x01")))


def test_reader_rejects_truncated_cars() -> None:
    out = io.BytesIO()
    CarWriter(out).write_block(HELLO, b"hello")
    with pytest.raises(ValueError, match="CAR truncated: block section at offset 59"):
        list(iter_car_blocks(io.BytesIO(out.getvalue()[:-1])))
    with pytest.raises(ValueError, match="truncated inside a varint"):
        list(iter_car_blocks(io.BytesIO(b"")))


def test_reader_reads_cidv0_and_dag_pb_sections() -> None:
    block = b"\x0a\x02\x08\x01"
    v0 = b"\x12\x20" + hashlib.sha256(block).digest()
    out = io.BytesIO()
    writer = CarWriter(out, dag_pb_cid(block))
    writer.write_block(v0, block)
    writer.write_block(dag_pb_cid(block), block)
    assert [(b.cid, b.data) for b in iter_car_blocks(io.BytesIO(out.getvalue()))] == [
        (v0, block),
        (dag_pb_cid(block), block),
    ]


def test_reader_rejects_a_header_without_roots() -> None:
    body = b"\xa1\x67version\x01"
    with pytest.raises(ValueError, match='needs "roots"'):
        CarReader(io.BytesIO(bytes((len(body),)) + body))


def test_reader_rejects_deeply_nested_header_cbor() -> None:
    # {"roots": [[[[…100k arrays…]]]], …}: without a depth limit this is a RecursionError.
    depth = 100_000
    body = b"\xa1\x65roots" + b"\x81" * depth + b"\x00"
    framed = encode_uvarint(len(body)) + body
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        CarReader(io.BytesIO(framed))


@pytest.mark.parametrize(("arrays", "error"), [(62, "root is not a CID link"), (63, "deeper")])
def test_header_nesting_limit_is_64_levels(arrays: int, error: str) -> None:
    # The map, the arrays, then an integer: 64 levels in all decode (and the header is then
    # refused for its shape); one more is refused for its depth.
    body = b"\xa2\x65roots" + b"\x81" * arrays + b"\x00" + b"\x67version\x01"
    with pytest.raises(ValueError, match=error):
        CarReader(io.BytesIO(encode_uvarint(len(body)) + body))


def test_a_small_block_is_one_write_with_its_prefix() -> None:
    sink = _RecordingWriter(limit=1 << 30)
    teed: list[bytes] = []
    writer = CarWriter(sink, HELLO, tee=lambda chunk: teed.append(bytes(chunk)))  # type: ignore[arg-type]
    location = writer.write_block(raw_cid(b"x" * 4095), b"x" * 4095)
    assert [call.nbytes for call in sink.calls] == [59, 2 + 36 + 4095]
    assert teed[-1] == location.varint + raw_cid(b"x" * 4095) + b"x" * 4095
    assert (location.car_offset, location.car_block_length) == (59, 2 + 36 + 4095)
