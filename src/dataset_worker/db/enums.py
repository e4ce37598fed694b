"""The job and piece enumerations, apart from the ORM models so that light readers can use them.

models.py re-exports them; importing this module costs nothing (the models cost the ORM).
"""

from __future__ import annotations

import enum


class JobType(enum.StrEnum):
    """Job types, in Singularity's spelling."""

    SCAN = "scan"
    PACK = "pack"
    DAGGEN = "daggen"


class JobState(enum.StrEnum):
    """Job states: created → ready → processing → complete or error; paused on request."""

    CREATED = "created"
    READY = "ready"
    PAUSED = "paused"
    PROCESSING = "processing"
    COMPLETE = "complete"
    ERROR = "error"


class PieceType(enum.StrEnum):
    """A data piece holds file content; a DAG piece holds the directory tree."""

    DATA = "data"
    DAG = "dag"
