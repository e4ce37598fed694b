"""Where an interrupted first scan resumes its listing, read from the rows it committed.

A first scan records entries in walk order (breadth first, names in byte order), one
transaction per batch, so its rows are their own resume point: directory ids follow the walk
order, the walk was consuming the last directory that has a recorded child, and in it every name
up to the greatest recorded child name is recorded. The walk resumes there: that directory is
listed again from after that name (at most one page again), the recorded directories after it are
listed whole, the directories before it not at all. Nothing extra is written per batch, so no
schema change.

Only for a source that can resume (`storage.base.ResumableSource`: S3), only until a scan
has listed the source to the end (`source_attachments.listed`, set by `mark_listed`: a rescan's
rows are not in one walk's order, so it lists all)
and not when the last file was cut between transactions (the full listing retires it).
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dataset_worker.db.models import Directory, File, SourceAttachment
from dataset_worker.storage.base import WalkStart


def resume_point(session: Session, attachment_id: int) -> WalkStart | None:
    """Where the attachment's interrupted first scan continues, or None to list everything."""
    listed = session.scalar(
        select(SourceAttachment.listed).where(SourceAttachment.id == attachment_id)
    )
    if listed or _last_file_is_cut(session, attachment_id):
        return None
    current = _current_directory(session, attachment_id)
    if current is None:
        return None
    paths = _directory_paths(session, attachment_id)
    pending = tuple(path for dir_id, path in paths if dir_id >= current)
    return WalkStart(pending, _last_recorded_name(session, current))


def _last_file_is_cut(session: Session, attachment_id: int) -> bool:
    """The newest file row still has mtime -1: it was cut between transactions (its ranges are
    recorded over several, scan/writer.py); a full listing retires and records it again."""
    mtime = session.scalar(
        select(File.last_modified_nano)
        .where(File.attachment_id == attachment_id)
        .order_by(File.id.desc())
        .limit(1)
    )
    return mtime == -1


def _current_directory(session: Session, attachment_id: int) -> int | None:
    """The last directory, in walk order, that has a recorded child."""
    with_file = session.scalar(
        select(func.max(File.directory_id)).where(File.attachment_id == attachment_id)
    )
    with_folder = session.scalar(
        select(func.max(Directory.parent_id)).where(Directory.attachment_id == attachment_id)
    )
    found = [dir_id for dir_id in (with_file, with_folder) if dir_id is not None]
    return max(found) if found else None


def _directory_paths(session: Session, attachment_id: int) -> list[tuple[int, str]]:
    """(id, path) of every directory of the attachment, in id (= walk) order."""
    paths: dict[int, str] = {}
    ordered: list[tuple[int, str]] = []
    rows = session.execute(
        select(Directory.id, Directory.parent_id, Directory.name)
        .where(Directory.attachment_id == attachment_id)
        .order_by(Directory.id)
    )
    for dir_id, parent_id, name in rows:
        if parent_id is None:
            path = ""  # the root
        else:
            parent = paths[parent_id]  # a parent is recorded before its children
            path = f"{parent}/{name}" if parent else name
        paths[dir_id] = path
        ordered.append((dir_id, path))
    return ordered


def _last_recorded_name(session: Session, directory_id: int) -> str:
    """The greatest name (bytes order) recorded in the directory: the newest file or folder
    row is the greatest of its kind, because rows are written in name order."""
    names: list[str] = []
    file_path = session.scalar(
        select(File.path).where(File.directory_id == directory_id).order_by(File.id.desc()).limit(1)
    )
    if file_path is not None:
        names.append(file_path.rsplit("/", 1)[-1])
    folder = session.scalar(
        select(Directory.name)
        .where(Directory.parent_id == directory_id)
        .order_by(Directory.id.desc())
        .limit(1)
    )
    if folder is not None:
        names.append(folder)
    return max(names, key=lambda name: name.encode())


def mark_listed(session: Session, attachment_id: int) -> None:
    """The walk reached its end: later scans of the attachment list everything."""
    session.execute(
        update(SourceAttachment).where(SourceAttachment.id == attachment_id).values(listed=True)
    )
