"""The content provider's trustless gateway (`/ipfs/{cid}`) through a real provider process, over
DAGs prepared by the real job bodies: one preparation with CAR files (blocks read from the CARs
and `raw_block`) and one inline (leaves read from the source files); SQLite and PostgreSQL.
The CARs it streams are read by the JS harness (ipfs-unixfs-exporter, verify-car.mjs)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from dataset_worker.content.car import CarReader
from dataset_worker.content.cid import DAG_PB, cid_from_str, cid_to_str, raw_cid
from dataset_worker.content.dagpb import decode_node
from dataset_worker.content.unixfs import DataType, decode_data
from dataset_worker.content.varint import decode_uvarint
from dataset_worker.db import Database
from dataset_worker.db.models import Car, CarBlock, Directory, File, FileRange, JobState, JobType
from dataset_worker.provider.blocks import check_hash
from tests.integration.provider_support import (
    Provider,
    fresh_database_url,
    running_provider,
)
from tests.interop_harness import assert_same_files, harness
from tests.support.jobs import add_job, make_local_preparation, run_job, scan_and_pack, write_files
from tests.support.preps import leaf_block_row

MAX_SIZE = 1_000_000
HAMT_FILES = 1120  # 1120 x (200-byte name + 36-byte CID) passes boxo's 256 KiB sharding estimate
TREE: dict[str, int | bytes] = {
    "a.txt": 100,
    "empty.bin": b"",
    "big.bin": 2_600_000,
    "dir1/nested/deep/file.dat": 5000,
    "dir1/ünïcødé 文件.txt": 1234,
    "dir1/Space Name.bin": 77,
    **{f"wide/{i:04d}-{'x' * 195}": f"entry {i}\n".encode() for i in range(HAMT_FILES)},
}
CAR_TYPE = "application/vnd.ipld.car; version=1"
RAW_TYPE = "application/vnd.ipld.raw"
UNKNOWN_CID = cid_to_str(raw_cid(b"in no preparation"))


@dataclass(frozen=True)
class Prepared:
    """A prepared tree: its source folder, root CID and the pieces' CAR files (none if inline)."""

    source: Path
    root: str
    cars: list[Path]


@dataclass(frozen=True)
class Gateway:
    """Two preparations in one database, and a provider serving them."""

    with_cars: Prepared
    inline: Prepared
    database_url: str
    provider: Provider
    folder: Path

    def url(self, rest: str) -> str:
        return f"{self.provider.url}/ipfs/{rest}"


def prepare(db: Database, name: str, folder: Path, *, inline: bool, seed: int) -> Prepared:
    """Scan, pack and daggen a generated tree; inline means no output folder (no CAR files)."""
    source, output = folder / f"{name}-source", folder / f"{name}-output"
    write_files(source, TREE, seed=seed)
    rows = make_local_preparation(db, name, source, None if inline else output, max_size=MAX_SIZE)
    packs = scan_and_pack(db, rows.attachment_id)
    assert [run.state for run in packs] == [JobState.COMPLETE] * len(packs), [
        run.error for run in packs
    ]
    daggen = run_job(db, add_job(db, rows.attachment_id, JobType.DAGGEN))
    assert daggen.state is JobState.COMPLETE, daggen.error
    with db.read() as session:
        root = session.scalar(select(Directory.cid).where(Directory.id == rows.root_directory_id))
        names = session.scalars(
            select(Car.storage_path).where(Car.preparation_id == rows.preparation_id)
        ).all()
    assert root is not None
    cars = [] if inline else [output / name for name in names]
    return Prepared(source, cid_to_str(root), cars)


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Both kinds of preparation in one database, and a provider over it."""
    folder = tmp_path_factory.mktemp("gateway")
    url = fresh_database_url(request.param, request, folder)
    db = Database(url)
    try:
        with_cars = prepare(db, "cars", folder, inline=False, seed=1)
        inline = prepare(db, "inline", folder, inline=True, seed=2)
    finally:
        db.dispose()
    for provider in running_provider(url, folder):
        yield Gateway(with_cars, inline, url, provider, folder)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120) as http:
        yield http


def blocks_of(car: bytes) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """The roots and the (CID, block) sections of a CAR."""
    reader = CarReader(io.BytesIO(car))
    sections = [(block.cid, bytes(block.data)) for block in reader]
    return reader.roots, sections


def depth_first(root: bytes, blocks: dict[bytes, bytes]) -> list[bytes]:
    """The CIDs under `root` depth first, links in order, each once (what the CAR must hold)."""
    order: list[bytes] = []
    seen: set[bytes] = set()

    def visit(cid: bytes) -> None:
        if cid in seen:
            return
        seen.add(cid)
        order.append(cid)
        if decode_uvarint(cid, 1)[0] == DAG_PB:
            for link in decode_node(blocks[cid]).links:
                visit(link.cid)

    visit(root)
    return order


@pytest.mark.parametrize("kind", ["with_cars", "inline"])
def test_car_of_the_root_holds_the_dag_depth_first_each_block_once(
    gateway: Gateway, client: httpx.Client, kind: str, tmp_path: Path
) -> None:
    prepared: Prepared = getattr(gateway, kind)
    reply = client.get(gateway.url(f"{prepared.root}?format=car"))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == CAR_TYPE
    assert reply.headers["etag"] == f'"{prepared.root}.car"'
    roots, sections = blocks_of(reply.content)
    assert roots == [cid_from_str(prepared.root)]
    cids = [cid for cid, _ in sections]
    assert len(cids) == len(set(cids))
    assert all(check_hash(cid, block) for cid, block in sections)
    assert cids == depth_first(roots[0], dict(sections))
    car = tmp_path / "root.car"
    car.write_bytes(reply.content)
    js = harness()
    summary = js.export(prepared.root, tmp_path / "out", [car])
    assert summary["type"] == "directory"
    assert assert_same_files(tmp_path / "out", prepared.source) == len(TREE)
    js.verify_car([car])


def test_accept_header_asks_for_a_car(gateway: Gateway, client: httpx.Client) -> None:
    root = gateway.with_cars.root
    reply = client.get(gateway.url(root), headers={"Accept": "application/vnd.ipld.car"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == CAR_TYPE
    assert blocks_of(reply.content)[0] == [cid_from_str(root)]


def test_car_of_a_path_starts_with_the_blocks_of_the_path(
    gateway: Gateway, client: httpx.Client, tmp_path: Path
) -> None:
    root = gateway.with_cars.root
    reply = client.get(gateway.url(f"{root}/dir1/nested?format=car"))
    assert reply.status_code == 200, reply.text
    roots, sections = blocks_of(reply.content)
    assert roots == [cid_from_str(root)]
    blocks = dict(sections)
    root_links = {link.name: link.cid for link in decode_node(blocks[roots[0]]).links}
    dir1 = root_links[b"dir1"]
    nested = {link.name: link.cid for link in decode_node(blocks[dir1]).links}[b"nested"]
    assert [cid for cid, _ in sections] == [roots[0], dir1, *depth_first(nested, blocks)]
    assert b"a.txt" in root_links and root_links[b"a.txt"] not in blocks  # siblings left out


def test_raw_gives_one_block_hash_checked(gateway: Gateway, client: httpx.Client) -> None:
    root = gateway.with_cars.root
    by_format = client.get(gateway.url(f"{root}?format=raw"))
    by_accept = client.get(gateway.url(root), headers={"Accept": RAW_TYPE})
    for reply in (by_format, by_accept):
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == RAW_TYPE
        assert reply.headers["etag"] == f'"{root}.raw"'
        assert check_hash(cid_from_str(root), reply.content)
    leaf = first_leaf(gateway.database_url, "big.bin")
    reply = client.get(gateway.url(f"{cid_to_str(leaf)}?format=raw"))
    assert reply.status_code == 200
    assert len(reply.content) == 256 << 10 and check_hash(leaf, reply.content)  # split size
    head = client.head(gateway.url(f"{root}?format=raw"))
    assert head.content == b"" and int(head.headers["content-length"]) == len(by_format.content)


@pytest.mark.parametrize("kind", ["with_cars", "inline"])
@pytest.mark.parametrize(
    "path", ["a.txt", "empty.bin", "big.bin", "dir1/ünïcødé 文件.txt", "dir1/nested/deep/file.dat"]
)
def test_a_path_gives_the_file_bytes(
    gateway: Gateway, client: httpx.Client, kind: str, path: str
) -> None:
    prepared: Prepared = getattr(gateway, kind)
    reply = client.get(gateway.url(f"{prepared.root}/{path}"))
    assert reply.status_code == 200, reply.text
    assert reply.content == (prepared.source / path).read_bytes()
    assert reply.headers["content-type"] == "application/octet-stream"
    assert int(reply.headers["content-length"]) == len(reply.content)


def test_gateway_bytes_are_sandboxed_and_never_sniffed(
    gateway: Gateway, client: httpx.Client
) -> None:
    root = gateway.with_cars.root
    replies = [
        client.get(gateway.url(f"{root}/a.txt")),  # a file's bytes
        client.get(gateway.url(f"{root}/a.txt"), headers={"Range": "bytes=0-0"}),
        client.get(gateway.url(f"{root}?format=raw")),  # one block
        client.get(gateway.url(f"{root}?format=car")),  # a CAR
        client.head(gateway.url(f"{root}/a.txt")),
    ]
    for reply in replies:
        assert reply.status_code in (200, 206), reply.text
        # An HTML file opened in a browser runs as a page of no origin, without scripts.
        assert reply.headers["content-security-policy"] == "sandbox"
        assert reply.headers["x-content-type-options"] == "nosniff"


def test_a_file_in_a_hamt_directory(gateway: Gateway, client: httpx.Client) -> None:
    root = gateway.with_cars.root
    name = f"0777-{'x' * 195}"
    wide = client.get(gateway.url(f"{root}/wide?format=raw"))
    assert decode_data(decode_node(wide.content).data or b"").type is DataType.HAMT_SHARD
    reply = client.get(gateway.url(f"{root}/wide/{name}"))
    assert reply.status_code == 200, reply.text
    assert reply.content == b"entry 777\n"


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=1048570-1048585", 1048570, 1048586),  # across two leaves
        ("bytes=-10", 2_600_000 - 10, 2_600_000),
        ("bytes=2000000-", 2_000_000, 2_600_000),
    ],
)
def test_a_range_of_a_file_is_206(
    gateway: Gateway, client: httpx.Client, header: str, start: int, stop: int
) -> None:
    prepared = gateway.with_cars
    reply = client.get(gateway.url(f"{prepared.root}/big.bin"), headers={"Range": header})
    assert reply.status_code == 206, reply.text
    data = (prepared.source / "big.bin").read_bytes()
    assert reply.content == data[start:stop]
    assert reply.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(data)}"


def test_a_range_past_the_end_is_416(gateway: Gateway, client: httpx.Client) -> None:
    reply = client.get(
        gateway.url(f"{gateway.with_cars.root}/a.txt"), headers={"Range": "bytes=100-"}
    )
    assert reply.status_code == 416
    assert reply.headers["content-range"] == "bytes */100"
    assert "Range not satisfiable" in reply.json()["error"]


def test_a_directory_without_format_lists_its_entries(
    gateway: Gateway, client: httpx.Client
) -> None:
    reply = client.get(gateway.url(f"{gateway.with_cars.root}/dir1"))
    assert reply.status_code == 200
    names = [entry["name"] for entry in reply.json()["entries"]]
    assert names == ["Space Name.bin", "nested", "ünïcødé 文件.txt"]


@pytest.mark.parametrize(
    ("rest", "status", "field", "words"),
    [
        ("not-a-cid", 400, "cid", "base32 CIDv1"),
        ("bafyzzzz", 400, "cid", "CID"),
        (f"{UNKNOWN_CID}?format=raw", 404, None, "is known here"),
        ("{root}/no/such/file", 404, None, 'no entry "no"'),
        ("{root}/a.txt/below", 404, None, "is a file"),
        ("{root}?format=xml", 400, "format", 'format must be "raw" or "car"'),
    ],
)
def test_bad_requests_are_json_errors(
    gateway: Gateway,
    client: httpx.Client,
    rest: str,
    status: int,
    field: str | None,
    words: str,
) -> None:
    reply = client.get(gateway.url(rest.format(root=gateway.with_cars.root)))
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert words in body["error"]
    if field is not None:
        assert body["errors"][0]["field"] == field


def test_a_changed_car_file_is_refused_not_served(gateway: Gateway, client: httpx.Client) -> None:
    leaf = first_leaf(gateway.database_url, "dir1/nested/deep/file.dat")
    car_path, offset = block_position(gateway, leaf)
    original = car_path.read_bytes()
    changed = bytearray(original)
    changed[offset] ^= 0xFF
    car_path.write_bytes(bytes(changed))
    try:
        reply = client.get(gateway.url(f"{cid_to_str(leaf)}?format=raw"))
        assert reply.status_code == 409, reply.text
        assert "does not match its CID" in reply.json()["error"]
        assert reply.json()["detail"]["file"] == car_path.name  # not the server's folders
        assert str(car_path.parent) not in reply.text
        path = f"{gateway.with_cars.root}/dir1/nested/deep/file.dat"
        assert client.get(gateway.url(path)).status_code == 409
    finally:
        car_path.write_bytes(original)
    assert client.get(gateway.url(f"{cid_to_str(leaf)}?format=raw")).status_code == 200


def test_a_damaged_compressed_node_is_refused_not_served(
    gateway: Gateway, client: httpx.Client
) -> None:
    db = Database(gateway.database_url)
    try:
        with db.read() as session:
            # A HAMT shard of the inline preparation's "wide" folder: long names, kept
            # compressed, and no CAR file to read it from instead.
            block_id, cid, stored = session.execute(
                select(CarBlock.id, CarBlock.cid, CarBlock.raw_block_zlib)
                .join(Car, Car.id == CarBlock.car_id)
                .where(Car.storage_id.is_(None), CarBlock.raw_block_zlib.is_not(None))
                .order_by(CarBlock.id)
                .limit(1)
            ).one()
        assert stored is not None
        damaged = bytearray(stored)
        damaged[len(damaged) // 2] ^= 0xFF
        _set_compressed(db, block_id, bytes(damaged))
        try:
            reply = client.get(gateway.url(f"{cid_to_str(cid)}?format=raw"))
            assert reply.status_code == 409, reply.text
            assert "do not decompress" in reply.json()["error"]
        finally:
            _set_compressed(db, block_id, stored)
        reply = client.get(gateway.url(f"{cid_to_str(cid)}?format=raw"))
        assert reply.status_code == 200 and check_hash(cid, reply.content)
    finally:
        db.dispose()


def _set_compressed(db: Database, block_id: int, stored: bytes) -> None:
    with db.write() as session:
        session.execute(
            update(CarBlock).where(CarBlock.id == block_id).values(raw_block_zlib=stored)
        )


def test_served_pieces_pass_the_harness(
    gateway: Gateway, client: httpx.Client, tmp_path: Path
) -> None:
    js = harness()
    files = []
    for car in gateway.with_cars.cars:
        reply = client.get(f"{gateway.provider.url}/piece/{car.stem}")
        assert reply.status_code == 200
        assert reply.content == car.read_bytes()
        served = tmp_path / car.name
        served.write_bytes(reply.content)
        files.append(served)
    js.verify_car(files)
    records = js.commp(files, min_piece_size=1 << 20)
    assert [record["pieceCid"] for record in records] == [car.stem for car in files]


def first_leaf(database_url: str, relative: str) -> bytes:
    """The CID of the first block of a file of the CAR-backed preparation: its first
    `car_blocks` row, or its range when the file is one leaf (which keeps no row)."""
    db = Database(database_url)
    try:
        with db.read() as session:
            cid = session.scalar(
                select(CarBlock.cid)
                .join(File, File.id == CarBlock.file_id)
                .join(Car, Car.id == CarBlock.car_id)
                .where(File.path == relative, Car.storage_path != "")
                .order_by(CarBlock.file_offset)
                .limit(1)
            ) or session.scalar(
                select(FileRange.cid)
                .join(File, File.id == FileRange.file_id)
                .join(Car, Car.job_id == FileRange.job_id)
                .where(
                    File.path == relative,
                    Car.storage_path != "",
                    FileRange.car_offset.is_not(None),
                )
                .order_by(FileRange.offset)
                .limit(1)
            )
    finally:
        db.dispose()
    assert cid is not None
    return cid


def block_position(gateway: Gateway, cid: bytes) -> tuple[Path, int]:
    """The CAR file holding a block, and where its data starts in it."""
    db = Database(gateway.database_url)
    try:
        with db.read() as session:
            row = session.execute(
                select(CarBlock, Car.storage_path)
                .join(Car, Car.id == CarBlock.car_id)
                .where(CarBlock.cid == cid, Car.storage_path != "")
            ).one_or_none()
            if row is not None:
                block, name = row
            else:  # a one-leaf range keeps no row: the block it stands for
                leaf, car_id, name = session.execute(
                    select(FileRange, Car.id, Car.storage_path)
                    .join(Car, Car.job_id == FileRange.job_id)
                    .where(FileRange.cid == cid, FileRange.car_offset.is_not(None))
                    .where(Car.storage_path != "")
                ).one()
                block = leaf_block_row(leaf, car_id)
            offset = block.car_offset + len(block.varint) + len(block.cid)
    finally:
        db.dispose()
    [car] = [path for path in gateway.with_cars.cars if path.name == name]
    return car, offset
