"""create_preparation and list_preparations on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from dataset_worker.db import Database
from dataset_worker.db.models import (
    Directory,
    OutputAttachment,
    Preparation,
    SourceAttachment,
    Storage,
)
from dataset_worker.prep import (
    Conflict,
    CreatePreparationRequest,
    InvalidParameter,
    create_preparation,
    list_preparations,
)


def _request(tmp_path: Path, name: object = "photos", **fields: object) -> CreatePreparationRequest:
    # Raw request values, as a client sends them: the model is what validates them.
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    values: dict[str, object] = {
        "name": name,
        "source": str(source),
        "output": str(tmp_path / f"{name}-cars"),
    }
    values.update(fields)
    return CreatePreparationRequest.model_validate(values)


def _row_counts(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Preparation, Storage, SourceAttachment, OutputAttachment, Directory)
        }


def test_creates_preparation_storages_attachments_and_root_directory(
    db: Database, tmp_path: Path
) -> None:
    view = create_preparation(db, _request(tmp_path, max_size="1000000", no_dag=True))

    assert view.name == "photos"
    assert (view.max_size, view.piece_size, view.min_piece_size) == (1_000_000, 1 << 20, 1 << 20)
    assert view.no_dag is True
    assert view.no_inline is False
    assert view.delete_after_export is False
    [source] = view.source_storages
    [output] = view.output_storages
    assert (source.name, source.type, source.path) == (
        "photos-source",
        "local",
        str(tmp_path / "source"),
    )
    assert (output.name, output.type, output.path) == (
        "photos-output",
        "local",
        str(tmp_path / "photos-cars"),
    )
    assert (tmp_path / "photos-cars").is_dir()
    with db.read() as session:
        attachment = session.scalars(select(SourceAttachment)).one()
        assert attachment.preparation_id == view.id
        root = session.scalars(select(Directory)).one()
        assert (root.name, root.parent_id, root.cid, root.attachment_id) == (
            "",
            None,
            None,
            attachment.id,
        )
        assert root.exported is False
    assert _row_counts(db) == {
        "preparations": 1,
        "storages": 2,
        "source_attachments": 1,
        "output_attachments": 1,
        "directories": 1,
    }


def test_view_serialises_in_singularity_shape(db: Database, tmp_path: Path) -> None:
    data = create_preparation(db, _request(tmp_path)).model_dump(mode="json", by_alias=True)
    assert data["maxSize"] == 33_822_867_456
    assert data["pieceSize"] == 1 << 35
    assert data["minPieceSize"] == 1 << 20
    assert data["createdAt"].endswith("Z")
    assert data["sourceStorages"][0]["path"] == str(tmp_path / "source")
    assert {"deleteAfterExport", "noInline", "noDag", "outputStorages", "updatedAt"} <= data.keys()


def test_duplicate_name_is_a_conflict_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    create_preparation(db, _request(tmp_path))
    before = _row_counts(db)
    request = _request(tmp_path, output=str(tmp_path / "new" / "cars"))
    with pytest.raises(Conflict, match='a preparation named "photos" already exists'):
        create_preparation(db, request)
    assert _row_counts(db) == before
    assert not (tmp_path / "new").exists()  # the output folder made for it was removed again


def test_taken_storage_name_is_a_conflict(db: Database, tmp_path: Path) -> None:
    with db.write() as session:
        session.add(Storage(name="photos-output", type="local", path="/elsewhere", config={}))
    with pytest.raises(Conflict, match='a storage named "photos-output" already exists'):
        create_preparation(db, _request(tmp_path))
    assert _row_counts(db)["preparations"] == 0
    assert _row_counts(db)["storages"] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "42"}, 'name "42" must not be all digits'),
        ({"max_size": "big"}, "maxSize: invalid size"),
        ({"piece_size": "3MiB", "max_size": "1MiB"}, "pieceSize must be a power of two"),
        ({"piece_size": "128GiB"}, "pieceSize must be at most 64 GiB"),
        ({"max_size": "32GiB"}, "maxSize needs to be reduced to leave space for padding"),
        ({"min_piece_size": "64GiB"}, "must not be larger than pieceSize"),
        ({"min_piece_size": "3MiB"}, "minPieceSize must be a power of two"),
        ({"output": None, "delete_after_export": True}, "deleteAfterExport needs an output"),
    ],
)
def test_invalid_requests_create_nothing(
    db: Database, tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        create_preparation(db, _request(tmp_path, **fields))
    assert _row_counts(db) == dict.fromkeys(_row_counts(db), 0)
    assert not (tmp_path / "photos-cars").exists()


def test_missing_source_is_refused(db: Database, tmp_path: Path) -> None:
    request = _request(tmp_path, source=str(tmp_path / "nope"))
    with pytest.raises(InvalidParameter, match=r'source ".*nope" is not an existing directory'):
        create_preparation(db, request)
    assert _row_counts(db)["preparations"] == 0


def test_existing_output_folder_is_kept(db: Database, tmp_path: Path) -> None:
    out = tmp_path / "photos-cars"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    create_preparation(db, _request(tmp_path))
    assert (out / "keep.txt").read_text() == "x"


def test_list_preparations_oldest_first_with_storages(db: Database, tmp_path: Path) -> None:
    assert list_preparations(db) == []
    create_preparation(db, _request(tmp_path, name="b"))
    create_preparation(db, _request(tmp_path, name="a", no_dag=True))
    views = list_preparations(db)
    assert [v.name for v in views] == ["b", "a"]
    assert [v.no_dag for v in views] == [False, True]
    assert views[1].output_storages[0].name == "a-output"


@pytest.mark.parametrize("output", [None, "", "  "])
def test_no_output_makes_an_inline_preparation(
    db: Database, tmp_path: Path, output: str | None
) -> None:
    view = create_preparation(db, _request(tmp_path, output=output))
    assert view.output_storages == [] and len(view.source_storages) == 1
    counts = _row_counts(db)
    assert counts["storages"] == 1 and counts["output_attachments"] == 0
    assert counts["directories"] == 1
