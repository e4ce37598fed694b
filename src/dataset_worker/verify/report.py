"""What a verification found: problems naming their culprit, per-piece results and totals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong, with whatever identifies it (piece, CAR file, block, file)."""

    kind: str
    message: str
    piece_cid: str | None = None
    car_path: str | None = None
    block_cid: str | None = None
    file_path: str | None = None

    def to_json(self) -> dict[str, str]:
        """camelCase keys; absent identifiers are left out."""
        data = {
            "kind": self.kind,
            "message": self.message,
            "pieceCid": self.piece_cid,
            "carPath": self.car_path,
            "blockCid": self.block_cid,
            "filePath": self.file_path,
        }
        return {key: value for key, value in data.items() if value is not None}

    def lines(self) -> Iterator[str]:
        """The problem as text: a headline, then one indented line per identifier."""
        yield f"problem {self.kind}: {self.message}"
        for label, value in (
            ("piece", self.piece_cid),
            ("car", self.car_path),
            ("block", self.block_cid),
            ("file", self.file_path),
        ):
            if value is not None:
                yield f"    {label}: {value}"


@dataclass(frozen=True, slots=True)
class PieceResult:
    """One `cars` row: what was read, or why it was skipped."""

    car_id: int
    piece_type: str
    piece_cid: str
    car_path: str | None
    blocks: int = 0
    bytes_read: int = 0
    problems: int = 0
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        """camelCase keys."""
        return {
            "carId": self.car_id,
            "pieceType": self.piece_type,
            "pieceCid": self.piece_cid,
            "carPath": self.car_path,
            "blocks": self.blocks,
            "bytes": self.bytes_read,
            "problems": self.problems,
            "skipped": self.skipped,
        }


@dataclass
class Report:
    """The whole verification of one preparation."""

    preparation_id: int
    preparation_name: str
    deep: bool
    root_cid: str | None = None
    pieces: list[PieceResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0  # files rebuilt from the DAG and compared with the source (--deep)
    files_skipped: int = 0  # in the DAG, gone from a delete-after-export source: not comparable
    file_bytes: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def pieces_checked(self) -> int:
        """Pieces whose CAR file was read."""
        return sum(1 for piece in self.pieces if piece.skipped is None)

    @property
    def pieces_skipped(self) -> int:
        """Pieces with no CAR file to read (inline preparations)."""
        return len(self.pieces) - self.pieces_checked

    @property
    def blocks(self) -> int:
        """Blocks read from all CARs."""
        return sum(piece.blocks for piece in self.pieces)

    @property
    def bytes_read(self) -> int:
        """CAR bytes read."""
        return sum(piece.bytes_read for piece in self.pieces)

    def summary(self) -> str:
        """One line: what was checked and the verdict."""
        parts = [
            f"{self.pieces_checked} pieces checked",
            f"{self.blocks} blocks",
            f"{self.bytes_read} bytes",
        ]
        if self.pieces_skipped:
            parts.insert(1, f"{self.pieces_skipped} skipped (no CAR file)")
        if self.deep:
            files = f"{self.files} files compared"
            if self.files_skipped:
                files += f" ({self.files_skipped} deleted from the source after export)"
            parts.append(files)
        verdict = "OK" if self.ok else f"{len(self.problems)} problems"
        return f'verify "{self.preparation_name}": ' + ", ".join(parts) + f": {verdict}"

    def lines(self) -> Iterator[str]:
        """The text report: every problem, then the summary line."""
        for problem in self.problems:
            yield from problem.lines()
        yield self.summary()

    def to_json(self) -> dict[str, Any]:
        """The same report as JSON-ready data (camelCase keys)."""
        return {
            "preparation": {"id": self.preparation_id, "name": self.preparation_name},
            "deep": self.deep,
            "ok": self.ok,
            "rootCid": self.root_cid,
            "summary": {
                "piecesChecked": self.pieces_checked,
                "piecesSkipped": self.pieces_skipped,
                "blocks": self.blocks,
                "bytes": self.bytes_read,
                "files": self.files if self.deep else None,
                "filesSkipped": self.files_skipped if self.deep else None,
                "fileBytes": self.file_bytes if self.deep else None,
                "problems": len(self.problems),
            },
            "problems": [problem.to_json() for problem in self.problems],
            "pieces": [piece.to_json() for piece in self.pieces],
        }
