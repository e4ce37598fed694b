"""`run --log-level debug` over an S3 source (moto's real server): the log never holds the
session token, the access key id or the secret key (botocore logs request headers and the
canonical request at DEBUG)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from dataset_worker.db import open_database
from dataset_worker.db.models import Job, JobState, JobType
from tests.support.jobs import add_job
from tests.support.s3servers import ACCESS_KEY, SECRET_KEY, S3Server
from tests.support.storages import StorageSpec, make_preparation

SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLEsessionTOKENthatMustNeverBeLogged0123456789"


def test_debug_log_holds_no_s3_credential(moto_server: S3Server, tmp_path: Path) -> None:
    bucket = moto_server.new_bucket()
    moto_server.client.put_object(Bucket=bucket, Key="data/a.bin", Body=b"x" * 5000)
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    db = open_database(url)
    try:
        out = tmp_path / "out"
        out.mkdir()
        source = StorageSpec("s3", f"s3://{bucket}/data", moto_server.config())
        attachment = make_preparation(
            db, "debug", source, StorageSpec("local", str(out)), max_size=1_000_000
        )
        add_job(db, attachment, JobType.SCAN)
    finally:
        db.dispose()
    env = {**os.environ, "AWS_SESSION_TOKEN": SESSION_TOKEN}
    result = subprocess.run(
        [sys.executable, "-m", "dataset_worker", "--database-url", url, "--state-dir",
         str(tmp_path / "state"), "run", "--exit-on-complete", "--log-level", "debug"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert " DEBUG " in log  # the debug level was on
    for secret in (SESSION_TOKEN, ACCESS_KEY, SECRET_KEY):
        assert secret not in log, f"{secret} found in the debug log"
    db = open_database(url)
    try:
        with db.read() as session:
            states = set(session.scalars(select(Job.state)))
    finally:
        db.dispose()
    assert states == {JobState.COMPLETE}  # the scan (and the packs) really talked to S3
