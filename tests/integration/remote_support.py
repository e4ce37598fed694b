"""Helpers for serving pieces prepared from S3: one tree, four preparations (inline or with CAR
files, from a folder or from a bucket), each prepared with the real job bodies into its own
database so that a content provider over it can only serve that preparation's rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from dataset_worker.content.carscan import iter_sections, read_roots
from dataset_worker.content.cid import cid_to_str
from dataset_worker.content.dagpb import decode_node
from dataset_worker.content.directory import read_directory_entries
from dataset_worker.content.unixfs import DataType, decode_data
from dataset_worker.db import Database
from dataset_worker.db.models import (
    Car,
    Directory,
    JobState,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
)
from dataset_worker.prep.create import validate_sizes
from tests.integration.provider_support import EMPTY_FOLDERS, TREE
from tests.support.jobs import write_files
from tests.support.s3servers import S3Server
from tests.support.storages import StorageSpec, run_all

MAX_SIZE = 1_000_000  # big.bin (2.6 MB) spans pieces
HAMT_FILES = 920
HAMT_NAME_LENGTH = 250  # bytes; folders allow 255
# Entries of 250-byte names and 36-byte raw CIDs: 920 * 286 bytes = 263,120, just past the
# 262,144-byte estimate at which a directory becomes a HAMT (docs/formats.md): as few files as
# can make one, since every file is a request to the S3 server, several times over.
HAMT_NAME_PAD = "long-file-name-" * 16
DAG_PB_V1 = b"\x01\x70"  # CIDv1 + dag-pb: directory and file nodes


@dataclass(frozen=True)
class Way:
    """One of the four preparations: where the source is, and whether CAR files are written
    (to a folder for a local source, to the bucket for an S3 source)."""

    source: str  # "local" or "s3"
    inline: bool

    @property
    def label(self) -> str:
        return f"{self.source}-{'inline' if self.inline else 'written'}"


WAYS = (Way("local", True), Way("local", False), Way("s3", True), Way("s3", False))


@dataclass(frozen=True, order=True)
class ServedPiece:
    """A recorded piece: type, CID, piece size and the storage type of its CAR (None: inline)."""

    piece_type: str
    cid: str
    piece_size: int
    storage_type: str | None


def hamt_name(index: int) -> str:
    """The name of the HAMT folder's file `index` (HAMT_NAME_LENGTH bytes)."""
    name = f"{index:05d}-{HAMT_NAME_PAD}"
    return name + "z" * (HAMT_NAME_LENGTH - len(name))


def write_source_tree(root: Path) -> None:
    """The provider test tree, empty folders, and a folder big enough to be a HAMT."""
    files: dict[str, int | bytes] = dict(TREE)
    for index in range(HAMT_FILES):
        files[f"dir1/hamt/{hamt_name(index)}"] = f"{index}\n".encode()
    write_files(root, files)
    for empty in EMPTY_FOLDERS:
        (root / empty).mkdir(parents=True)


def storage_specs(
    way: Way, tree: Path, output: Path, s3: S3Server, bucket: str
) -> tuple[StorageSpec, StorageSpec | None]:
    """The source and output storages of a way (no output: an inline preparation)."""
    if way.source == "local":
        source = StorageSpec("local", str(tree))
        written = StorageSpec("local", str(output))
    else:
        source = StorageSpec("s3", f"s3://{bucket}/dataset", s3.config())
        written = StorageSpec("s3", f"s3://{bucket}/out-{output.name}", s3.config())
    return source, None if way.inline else written


def prepare(
    db: Database, name: str, source: StorageSpec, output: StorageSpec | None
) -> tuple[list[ServedPiece], str]:
    """Create the preparation, run scan, pack and daggen; its pieces (sorted) and root CID."""
    limits = validate_sizes(MAX_SIZE, None, 1 << 20)
    with db.write() as session:
        prep = Preparation(
            name=name,
            max_size=MAX_SIZE,
            piece_size=limits.piece_size,
            min_piece_size=limits.min_piece_size,
            no_inline=output is not None,
        )
        attachment = SourceAttachment(
            storage=Storage(
                name=f"{name}-source", type=source.type, path=source.path, config=source.config
            )
        )
        prep.source_attachments.append(attachment)
        if output is not None:
            if output.type == "local":
                Path(output.path).mkdir(parents=True, exist_ok=True)
            prep.output_attachments.append(
                OutputAttachment(
                    storage=Storage(
                        name=f"{name}-output",
                        type=output.type,
                        path=output.path,
                        config=output.config,
                    )
                )
            )
        session.add(prep)
        session.flush()
        session.add(Directory(name="", parent_id=None, attachment_id=attachment.id))
        session.flush()
        attachment_id = attachment.id
    runs = run_all(db, attachment_id)
    assert [r.error for r in runs if r.state is not JobState.COMPLETE] == []
    with db.read() as session:
        rows = session.execute(
            select(Car.piece_type, Car.piece_cid, Car.piece_size, Storage.type)
            .outerjoin(Storage, Storage.id == Car.storage_id)
            .where(Car.attachment_id == attachment_id)
        ).all()
        root = session.scalar(
            select(Directory.cid).where(
                Directory.attachment_id == attachment_id, Directory.parent_id.is_(None)
            )
        )
    assert root is not None, "daggen gave the root directory no CID"
    pieces = sorted(
        ServedPiece(str(kind), cid_to_str(cid), size, storage) for kind, cid, size, storage in rows
    )
    return pieces, cid_to_str(root)


def directory_type(cars: Path, root: bytes, path: str) -> DataType:
    """The UnixFS type (Directory or HAMTShard) of the folder `path` below `root`, read from
    the dag-pb blocks of the CAR files in `cars`."""
    blocks: dict[bytes, bytes] = {}
    for car in sorted(cars.iterdir()):
        with car.open("rb") as stream:
            read_roots(stream)
            for section in list(iter_sections(stream, car.stat().st_size)):
                if section.cid[:2] == DAG_PB_V1:
                    stream.seek(section.data_offset)
                    blocks[section.cid] = stream.read(section.data_length)
    cid = root
    for name in path.split("/"):
        cid = read_directory_entries(cid, blocks.__getitem__)[name][0]
    return decode_data(decode_node(blocks[cid]).data or b"").type
