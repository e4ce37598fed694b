"""Property fuzzers of what hostile input reaches first: the Range and conditional-header parsers
of the content provider, and the CAR readers of `extract` and `verify`. None may raise anything but
its documented error (a 500 or a crash otherwise).

`FUZZ_EXAMPLES` cases per property in the suite (DW_FUZZ_EXAMPLES overrides it);
`scripts/fuzz.py` runs them with 10,000 or more.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dataset_worker.content.car import CarWriter
from dataset_worker.content.cid import DAG_PB_PREFIX, raw_cid
from dataset_worker.content.dagpb import PBLink, encode_node
from dataset_worker.content.unixfs import DIRECTORY_DATA
from dataset_worker.content.varint import encode_uvarint
from dataset_worker.provider.ranges import (
    RangeNotSatisfiable,
    if_range_allows,
    not_modified,
    parse_http_date,
    parse_range,
)
from dataset_worker.retrieve.carindex import BlockIndex, ExtractError
from dataset_worker.retrieve.extract import extract_tree
from dataset_worker.verify.car import CarFormatError, scan_car

FUZZ_EXAMPLES = int(os.environ.get("DW_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NUMBER = st.one_of(
    st.integers(0, 2_000_000).map(str),
    st.integers(0, 10**30).map(str),
    st.text("0123456789", min_size=1, max_size=6000),  # thousands of digits
)
SPEC = st.one_of(
    st.tuples(NUMBER, st.just("-"), NUMBER).map("".join),
    st.tuples(NUMBER, st.just("-")).map("".join),
    st.tuples(st.just("-"), NUMBER).map("".join),
    st.text(max_size=20),
)
RANGE_HEADER = st.one_of(
    st.text(max_size=200),
    st.lists(SPEC, min_size=1, max_size=80).map(lambda specs: "bytes=" + ",".join(specs)),
    st.lists(SPEC, min_size=1, max_size=5).map(lambda specs: " BYTES = " + " , ".join(specs)),
)


@FUZZ
@given(header=RANGE_HEADER, size=st.integers(0, 2**40))
def test_parse_range_gives_disjoint_ranges_within_the_representation(
    header: str, size: int
) -> None:
    try:
        ranges = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    if ranges is None:
        return
    assert ranges and len(ranges) <= 64
    assert sum(r.length for r in ranges) <= size
    for before, after in itertools.pairwise(ranges):
        assert before.end + 1 < after.start  # sorted, neither overlapping nor adjacent
    assert all(0 <= r.start <= r.end < size for r in ranges)


YEAR = st.one_of(st.integers(0, 10000), st.integers(0, 10**6))
ZONE = st.one_of(
    st.sampled_from(["GMT", "UTC", "Z", "EST", ""]),
    st.tuples(st.sampled_from("+-"), st.integers(0, 9999)).map(lambda z: f"{z[0]}{z[1]:04d}"),
)
DATE = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda day, month, year, h, m, s, zone: (
            f"Mon, {day:02d} {month} {year} {h:02d}:{m:02d}:{s:02d} {zone}"
        ),
        st.integers(0, 99),
        st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
        YEAR,
        st.integers(0, 99),
        st.integers(0, 99),
        st.integers(0, 99),
        ZONE,
    ),
)
MOMENT = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@FUZZ
@given(
    etag=st.text(max_size=20),
    moment=MOMENT,
    if_none_match=st.one_of(st.none(), st.text(max_size=60)),
    date=st.one_of(st.none(), DATE),
)
def test_conditional_headers_never_raise(
    etag: str, moment: datetime, if_none_match: str | None, date: str | None
) -> None:
    assert isinstance(not_modified(etag, moment, if_none_match, date), bool)
    assert isinstance(if_range_allows(date, etag, moment), bool)
    if date is not None:
        parsed = parse_http_date(date)
        assert parsed is None or parsed.tzinfo is not None


def _valid_car() -> tuple[bytes, bytes]:
    """A small CAR of a directory with two files: (root CID, CAR bytes)."""
    one, two = b"first file\n" * 10, b"second"
    links = [PBLink(raw_cid(one), b"a.txt", len(one)), PBLink(raw_cid(two), b"b.txt", len(two))]
    block = encode_node(links, DIRECTORY_DATA)
    root = DAG_PB_PREFIX + hashlib.sha256(block).digest()
    out = io.BytesIO()
    writer = CarWriter(out, root)
    for cid, data in ((root, block), (raw_cid(one), one), (raw_cid(two), two)):
        writer.write_block(cid, data)
    return root, out.getvalue()


ROOT, CAR = _valid_car()


@st.composite
def mutated_car(draw: st.DrawFn) -> bytes:
    """The valid CAR with a few bytes flipped, cut, inserted or zeroed, or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    data = bytearray(CAR)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "zero", "truncate"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "zero":
            data[at : at + 8] = bytes(len(data[at : at + 8]))
        else:
            del data[at:]
    return bytes(data)


@FUZZ
@given(data=mutated_car())
# Found by the fuzzer: a header length of 25 GB was allocated before the short read was seen.
@example(data=encode_uvarint(25_501_368_320) + b"\xa2")
def test_the_car_readers_refuse_broken_cars_cleanly(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="dw-fuzz-") as folder:
        car = Path(folder) / "x.car"
        car.write_bytes(data)
        # extract's index and tree writer: ExtractError and nothing else.
        try:
            with BlockIndex() as index:
                index.add_car(car)
                extract_tree(index, ROOT, Path(folder) / "out")
        except ExtractError:
            pass
        # verify's streaming reader: CarFormatError and nothing else.
        try:
            scan_car(car, lambda _section: None)
        except CarFormatError:
            pass
