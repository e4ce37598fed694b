"""`prep manifest` end to end on SQLite and PostgreSQL: a real tree scanned, packed and DAG'd by the
real job bodies, exported through the CLI and checked against the schema and the source files."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from dataset_worker.cli import app
from dataset_worker.content.piececid2 import parse_piece_cid_v2
from dataset_worker.db import Database
from dataset_worker.db.models import File, JobType, Preparation
from dataset_worker.prep import CreatePreparationRequest, create_preparation
from dataset_worker.prep.lookup import find_preparation, single_source
from tests.support.jobs import add_job, run_job, scan_and_pack, write_files
from tests.support.manifest import META_ARGS, file_entries, sha256_hex, validate_super_manifest

KIB = 1024
# Nested folders, an empty file, unicode names, and big.bin split over several pieces
# (max size 300 KB: ranges of 128 KiB, a few per piece).
TREE: dict[str, int | bytes] = {
    "big.bin": 700 * KIB,
    "empty.txt": b"",
    "notes.md": b"# notes\n",
    "a/b/c/deep.json": b'{"deep": true}',
    "a/photo.jpg": 40 * KIB,
    "ünïcødé/文件.txt": "héllo wörld".encode(),
    "ünïcødé/sub dir/ok.csv": b"x,y\n1,2\n",
}
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    """Invoke the CLI with this test's state dir and database."""
    runner = CliRunner()
    root = ["--state-dir", str(tmp_path / "state"), "--database-url", database_url]
    return lambda *args: runner.invoke(app, [*root, *args])


def _prepared(db: Database, tmp_path: Path, *, no_file_hash: bool = False) -> Path:
    """The tree, prepared as "tree" with every job run for real; returns the source folder."""
    source = tmp_path / "source"
    write_files(source, TREE)
    request = CreatePreparationRequest(
        name="tree",
        source=str(source),
        output=str(tmp_path / "cars"),
        max_size="300KB",
        min_piece_size="512KiB",
        no_file_hash=no_file_hash,
        no_auto=True,
    )
    create_preparation(db, request)
    with db.read() as session:
        attachment = single_source(find_preparation(session, "tree")).id
    assert all(r.error is None for r in scan_and_pack(db, attachment))
    assert run_job(db, add_job(db, attachment, JobType.DAGGEN)).error is None
    return source


def _export(run: Run, tmp_path: Path, *args: str, name: str = "m.json") -> Any:
    target = tmp_path / name
    result = run("prep", "manifest", "tree", "-o", str(target), *args)
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    return json.loads(text) if target.suffix == ".json" else text


def _piece_pairs(run: Run) -> list[tuple[str, str]]:
    result = run("prep", "pieces", "tree", "--json")
    assert result.exit_code == 0, result.output
    return [(p["pieceCid"], p["rootCid"]) for p in json.loads(result.stdout)]


def test_super_manifest_of_a_tree_follows_the_schema_and_the_files(
    db: Database, run: Run, tmp_path: Path
) -> None:
    source = _prepared(db, tmp_path)
    manifest = _export(run, tmp_path, *META_ARGS, "--tag", "test", "--tag", "ünï")

    validate_super_manifest(manifest)
    assert manifest["@type"] == "super-manifest" and manifest["@spec_version"] == "0.1.0"
    assert (manifest["name"], manifest["license"], manifest["tags"]) == (
        "tree",
        "CC-BY-4.0 OR MIT",
        ["test", "ünï"],
    )
    assert UUID4.match(manifest["uuid"])
    pairs = _piece_pairs(run)
    assert [(p["piece_cid"], p["payload_cid"]) for p in manifest["pieces"]] == pairs
    pieces = json.loads(run("prep", "pieces", "tree", "--json").stdout)
    assert [p["piece_cid_v2"] for p in manifest["pieces"]] == [p["pieceCidV2"] for p in pieces]
    assert manifest["n_pieces"] == len(pairs) >= 4

    entries = dict(file_entries(manifest["contents"]))
    assert set(entries) == set(TREE)
    for path, entry in entries.items():
        assert entry["hash"] == sha256_hex(source / path), path
        assert entry["byte_length"] == (source / path).stat().st_size
    data_pieces = {piece for piece, _root in pairs}
    big = entries["big.bin"]
    assert big["@type"] == "split-file"
    assert len({part["piece_cid"] for part in big["parts"]}) > 1  # spread over pieces
    assert {part["piece_cid"] for part in big["parts"]} <= data_pieces
    assert [part["byte_offset"] for part in big["parts"]] == [
        sum(p["byte_length"] for p in big["parts"][:i]) for i in range(len(big["parts"]))
    ]
    assert sum(part["byte_length"] for part in big["parts"]) == 700 * KIB
    assert entries["empty.txt"]["byte_length"] == 0
    assert entries["a/photo.jpg"]["media_type"] == "image/jpeg"
    assert entries["notes.md"]["piece_cid"] in data_pieces


def test_the_description_and_uuid_are_remembered_for_the_next_export(
    db: Database, run: Run, tmp_path: Path
) -> None:
    _prepared(db, tmp_path)
    first = _export(run, tmp_path, *META_ARGS, "--version", "2026-01-01", name="1.json")
    second = _export(run, tmp_path, "--dataset-name", "Renamed", name="2.json")
    validate_super_manifest(second)
    assert second["uuid"] == first["uuid"]
    assert second["name"] == "Renamed"
    for key in ("description", "version", "license", "project_url", "open_with"):
        assert second[key] == first[key], key
    with db.read() as session:
        stored = session.scalar(select(Preparation.manifest_meta))
    assert stored is not None and stored["name"] == "Renamed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the super-manifest needs description, license, projectUrl, openWith"),
        ((*META_ARGS, "--license", "not a licence!"), "license must be an SPDX license"),
        ((*META_ARGS, "--project-url", "ftp://x"), "projectUrl must be an http:// or https://"),
        ((*META_ARGS, "--format", "xml"), 'format must be one of super-manifest, json, csv; got "xml"'),
        (("--format", "json", "--license", "MIT"), "format json does not use them"),
        (("--public-url", "https://sp"), "publicUrl is only used by format csv"),
        (("--format", "csv", "--public-url", "sp.example"), "publicUrl must be an http:// or https://"),
        (("--format", "csv", "--piece-cid-version", "3"), "pieceCidVersion must be 1 or 2, got 3"),
        (("--format", "json", "--piece-cid-version", "2"), "pieceCidVersion is only used by format csv"),
    ],
)  # fmt: skip
def test_bad_parameters_are_one_clear_error_and_write_nothing(
    db: Database, run: Run, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    _prepared(db, tmp_path)
    target = tmp_path / "m.json"
    result = run("prep", "manifest", "tree", "-o", str(target), *args)
    assert result.exit_code == 1
    assert message in result.output
    assert not target.exists() and not list(tmp_path.glob(".m.json*"))


def test_csv_has_one_row_per_piece_with_urls_when_a_public_url_is_given(
    db: Database, run: Run, tmp_path: Path
) -> None:
    _prepared(db, tmp_path)
    plain = list(csv.reader(io.StringIO(_export(run, tmp_path, "--format", "csv", name="a.csv"))))
    with_url = list(
        csv.reader(
            io.StringIO(
                _export(
                    run,
                    tmp_path,
                    "--format",
                    "csv",
                    "--public-url",
                    "https://sp.example/",
                    name="b.csv",
                )
            )
        )
    )
    with_v2_url = list(
        csv.reader(
            io.StringIO(
                _export(
                    run,
                    tmp_path,
                    "--format",
                    "csv",
                    "--public-url",
                    "https://sp.example",
                    "--piece-cid-version",
                    "2",
                    name="c.csv",
                )
            )
        )
    )
    pieces = json.loads(run("prep", "pieces", "tree", "--json").stdout)
    header = ["pieceCid", "pieceSize", "payloadCid", "carSize", "url", "pieceCidV2"]
    expected = [
        [p["pieceCid"], str(p["pieceSize"]), p["rootCid"], str(p["fileSize"])] for p in pieces
    ]
    v2 = [p["pieceCidV2"] for p in pieces]
    assert plain == [header, *[[*row, "", v] for row, v in zip(expected, v2, strict=True)]]
    assert with_url == [
        header,
        *[
            [*row, f"https://sp.example/piece/{row[0]}", v]
            for row, v in zip(expected, v2, strict=True)
        ],
    ]
    assert with_v2_url == [
        header,
        *[[*row, f"https://sp.example/piece/{v}", v] for row, v in zip(expected, v2, strict=True)],
    ]
    # Each v2 CID binds the piece file's length on disk, padding zeros included.
    for piece in pieces:
        info = parse_piece_cid_v2(piece["pieceCidV2"])
        car = tmp_path / "cars" / piece["storagePath"]
        assert (info.v1, info.piece_size) == (piece["pieceCid"], piece["pieceSize"])
        assert info.payload_size == car.stat().st_size == piece["fileSize"]


def test_json_export_has_the_preparation_pieces_and_files_with_ranges(
    db: Database, run: Run, tmp_path: Path
) -> None:
    source = _prepared(db, tmp_path)
    export = _export(run, tmp_path, "--format", "json")
    assert export["preparation"]["name"] == "tree" and export["preparation"]["fileHash"] is True
    assert UUID4.match(export["uuid"])
    assert [(p["pieceCid"], p["rootCid"]) for p in export["pieces"]] == _piece_pairs(run)
    files = {f["path"]: f for f in export["files"]}
    assert set(files) == set(TREE)
    assert [f["id"] for f in export["files"]] == sorted(f["id"] for f in export["files"])
    big = files["big.bin"]
    assert big["sha256"] == sha256_hex(source / "big.bin")
    assert [r["offset"] for r in big["ranges"]] == [i * 128 * KIB for i in range(6)]
    assert all(r["cid"] and r["pieceCid"] for r in big["ranges"])


def test_no_file_hash_records_no_sha256_and_the_manifest_omits_hash(
    db: Database, run: Run, tmp_path: Path
) -> None:
    _prepared(db, tmp_path, no_file_hash=True)
    with db.read() as session:
        assert set(session.scalars(select(File.sha256))) == {None}
        assert session.scalar(select(Preparation.file_hash)) is False
    manifest = _export(run, tmp_path, *META_ARGS)
    validate_super_manifest(manifest)
    entries = dict(file_entries(manifest["contents"]))
    assert set(entries) == set(TREE)
    assert all("hash" not in entry for entry in entries.values())


def test_a_preparation_without_pieces_has_no_super_manifest(
    db: Database, run: Run, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    write_files(source, {"a.txt": b"a"})
    create_preparation(
        db, CreatePreparationRequest(name="tree", source=str(source), output=str(tmp_path / "o"))
    )
    result = run("prep", "manifest", "tree", *META_ARGS)
    assert result.exit_code == 1
    assert 'preparation "tree" has no pieces yet' in result.output


def test_a_preparation_made_before_uuids_gets_one_on_first_export(
    db: Database, run: Run, tmp_path: Path
) -> None:
    _prepared(db, tmp_path)
    with db.write() as session:
        session.execute(update(Preparation).values(uuid=None))
    first = _export(run, tmp_path, *META_ARGS, name="1.json")
    second = _export(run, tmp_path, name="2.json")
    assert UUID4.match(first["uuid"]) and second["uuid"] == first["uuid"]


def test_prep_create_no_file_hash_turns_the_switch_off(run: Run, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_files(source, {"a.txt": b"a"})
    base = ("prep", "create", "--source", str(source), "--json")
    off = run(*base, "--name", "off", "--output", str(tmp_path / "o1"), "--no-file-hash")
    on = run(*base, "--name", "on", "--output", str(tmp_path / "o2"))
    assert off.exit_code == 0 and on.exit_code == 0, off.output + on.output
    assert json.loads(off.stdout)["fileHash"] is False
    assert json.loads(on.stdout)["fileHash"] is True
    assert "no file hash" in run("prep", "create", "--name", "off2", "--source", str(source),
                                 "--output", str(tmp_path / "o3"), "--no-file-hash").stdout  # fmt: skip
