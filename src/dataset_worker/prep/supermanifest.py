"""The super-manifest of the Filecoin Data Preparation Manifest Specification v0, streamed.

The document is written as it is read: the header fields, the pieces, then `contents`, the
directory tree depth first (an explicit stack: trees can be deeper than Python's recursion
limit). Each directory lists its packed files, a page at a time in id order, then its
subdirectories that hold any packed file. Only the directories (id, parent, name) are held in
memory, never the files. A file packed in one range is a "file"; one packed in several ranges
is a "split-file" whose parts are those ranges, each with its piece.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from dataset_worker.content.cid import cid_to_str
from dataset_worker.db.models import Directory, File
from dataset_worker.prep.manifest_rows import (
    FileRow,
    files_query,
    iter_files,
    latest_packed_version,
)

SPEC_VERSION = "0.1.0"
SPEC_URL = (
    "https://raw.githubusercontent.com/fidlabs/data-prep-standard/refs/heads/main/"
    "specification/v0/FilecoinDataPreparationManifestSpecification.md"
)
MAX_NAME = 255  # the specification's limit on entry names
INDENT = 2

_Item = dict[str, Any] | tuple[int, str]  # a file entry, or a subdirectory (id, name)


def header(meta: dict[str, Any], uuid: str, n_pieces: int) -> dict[str, Any]:
    """The top-level fields, in the specification's order (tags only when there are some)."""
    fields: dict[str, Any] = {
        "@spec": SPEC_URL,
        "@spec_version": SPEC_VERSION,
        "@type": "super-manifest",
        "name": meta["name"],
        "description": meta["description"],
        "version": meta["version"],
        "open_with": meta["open_with"],
        "license": meta["license"],
        "project_url": meta["project_url"],
        "uuid": uuid,
        "n_pieces": n_pieces,
    }
    if meta.get("tags"):
        fields["tags"] = meta["tags"]
    return fields


def write_super_manifest(
    session: Session,
    out: TextIO,
    fields: dict[str, Any],
    pieces: list[tuple[bytes, bytes, str]],
    attachment_id: int,
    *,
    hashed: bool,
) -> None:
    """Write the whole document: `fields`, then `pieces` ((piece CID, CAR root CID, v2 piece
    CID) triples), then the attachment's tree. `piece_cid_v2` is an extra property of each
    piece, which the v0 schema allows (its objects are open)."""
    out.write("{\n")
    for key, value in fields.items():
        out.write(f"{_pad(1)}{_dumps(key)}: {_dumps(value)},\n")
    out.write(f'{_pad(1)}"pieces": [')
    for index, (piece_cid, root_cid, piece_cid_v2) in enumerate(pieces):
        item = {"piece_cid": cid_to_str(piece_cid), "payload_cid": cid_to_str(root_cid)}
        if piece_cid_v2:  # "" for a row whose sizes cannot make one
            item["piece_cid_v2"] = piece_cid_v2
        out.write(f"{',' if index else ''}\n{_pad(2)}{_dumps(item)}")
    out.write(f"\n{_pad(1)}],\n")
    out.write(f'{_pad(1)}"contents": ')
    _Tree(session, attachment_id, hashed).write(out)
    out.write("\n}\n")


@dataclass
class _Frame:
    """One open `contents` array: its remaining items and its depth."""

    items: Iterator[_Item]
    depth: int
    first: bool = True


@dataclass
class _Tree:
    """The attachment's directories, and the writer of their contents."""

    session: Session
    attachment_id: int
    hashed: bool  # the preparation's file_hash (manifest_rows.file_sha256)
    children: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    with_files: set[int] = field(default_factory=set)
    root: int | None = None

    def __post_init__(self) -> None:
        parents: dict[int, int | None] = {}
        rows = self.session.execute(
            select(Directory.id, Directory.parent_id, Directory.name)
            .where(Directory.attachment_id == self.attachment_id)
            .order_by(Directory.id)
        )
        for dir_id, parent_id, name in rows:
            parents[dir_id] = parent_id
            if parent_id is None:
                self.root = self.root if self.root is not None else dir_id
            else:
                self.children.setdefault(parent_id, []).append((dir_id, name))
        self._mark_directories_with_files(parents)

    def _mark_directories_with_files(self, parents: dict[int, int | None]) -> None:
        """Every directory that holds a packed file, directly or below."""
        direct = self.session.scalars(
            select(File.directory_id)
            .where(File.attachment_id == self.attachment_id, File.cid.is_not(None))
            .distinct()
        )
        for dir_id in direct:
            current = dir_id
            while current is not None and current not in self.with_files:
                self.with_files.add(current)
                current = parents.get(current)

    def write(self, out: TextIO) -> None:
        """Write the root's `contents` array (empty when nothing is packed yet)."""
        out.write("[")
        if self.root is None:
            out.write("]")
            return
        stack = [_Frame(self._items(self.root), 2)]
        while stack:
            frame = stack[-1]
            item = next(frame.items, None)
            if item is None:
                stack.pop()
                out.write(f"\n{_pad(frame.depth - 1)}]")
                if stack:
                    out.write("}")  # the directory object around this array
                continue
            out.write(("" if frame.first else ",") + f"\n{_pad(frame.depth)}")
            frame.first = False
            if isinstance(item, dict):
                out.write(_dumps(item))
                continue
            dir_id, name = item
            out.write(f'{{"@type": "directory", "name": {_dumps(name)}, "contents": [')
            stack.append(_Frame(self._items(dir_id), frame.depth + 1))

    def _items(self, dir_id: int) -> Iterator[_Item]:
        """A directory's packed files (id order), then its subdirectories that hold any."""
        query = files_query().where(File.directory_id == dir_id, *latest_packed_version())
        for row in iter_files(self.session, query, hashed=self.hashed):
            entry = file_entry(row)
            if entry is not None:
                yield entry
        for child_id, name in self.children.get(dir_id, []):
            if child_id in self.with_files:
                yield child_id, name


def file_entry(row: FileRow) -> dict[str, Any] | None:
    """The "file" or "split-file" entry of a packed file; None if it is not fully packed."""
    if not row.packed:
        return None
    assert row.cid is not None
    media_type = mimetypes.guess_type(row.name, strict=True)[0]
    whole = len(row.ranges) == 1
    entry: dict[str, Any] = {
        "@type": "file" if whole else "split-file",
        "name": row.name,
        "byte_length": row.size,
        "cid": cid_to_str(row.cid),
    }
    if row.sha256 is not None:
        entry["hash"] = row.sha256.hex()
    if media_type:
        entry["media_type"] = media_type
    if whole:
        piece = row.ranges[0].piece_cid
        assert piece is not None
        entry["piece_cid"] = cid_to_str(piece)
    else:
        entry["parts"] = _parts(row)
    return entry


def _parts(row: FileRow) -> list[dict[str, Any]]:
    """One part per range, named `<name>.part_000`… (zero-padded so names sort in order)."""
    width = max(3, len(str(len(row.ranges) - 1)))
    parts = []
    for index, r in enumerate(row.ranges):
        assert r.cid is not None and r.piece_cid is not None
        suffix = f".part_{index:0{width}d}"
        parts.append(
            {
                "name": row.name[: MAX_NAME - len(suffix)] + suffix,
                "byte_length": r.length,
                "byte_offset": r.offset,
                "cid": cid_to_str(r.cid),
                "piece_cid": cid_to_str(r.piece_cid),
            }
        )
    return parts


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _pad(depth: int) -> str:
    return " " * (INDENT * depth)
