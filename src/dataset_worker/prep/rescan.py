"""`prep rescan`: list the source again and re-plan the work around what changed.

The scan job does the re-planning (worker/jobs/scan/stale.py): it records the new versions of
changed files and the new files, rebuilds the pack jobs that are not complete and hold a file
that changed or vanished, drops vanished files, and leaves every completed piece as it is. This
use-case only queues that scan; the queueing rule (and its 409 while a scan is already queued or
running) is start-scan's.
"""

from __future__ import annotations

from dataset_worker.db import Database
from dataset_worker.prep.control import start_scan
from dataset_worker.prep.views import JobView


def rescan_preparation(db: Database, prep: str | int) -> JobView:
    """Queue the scan of `prep` again so it re-plans around changed and vanished files."""
    return start_scan(db, prep)
