"""Storing an S3 secret without putting it in argv (which every user of the host can read in
/proc/PID/cmdline): `storage create --secret-from-stdin KEY` and `--option-file FILE`, through
the real CLI process and a real SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from dataset_worker.db import open_database
from dataset_worker.db.models import Storage

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY"
KEY_ID = "AKIAPLANTEDKEYID0002"


def cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", "--state-dir", str(tmp_path / "state"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_config(tmp_path: Path, name: str) -> dict[str, object]:
    db = open_database(f"sqlite:///{tmp_path / 'state' / 'dataset-worker.db'}")
    try:
        with db.read() as session:
            config = session.scalar(select(Storage.config).where(Storage.name == name))
    finally:
        db.dispose()
    assert isinstance(config, dict)
    return config


def test_secrets_from_stdin_are_stored_and_never_shown(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "storage", "create", "s3in", "s3://bucket/data", "--allow-secret-in-db",
        "--option", f"access_key_id={KEY_ID}", "--secret-from-stdin", "secret_access_key",
        stdin=f"{SECRET}\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert stored_config(tmp_path, "s3in")["secret_access_key"] == SECRET
    shown = cli(tmp_path, "storage", "show", "s3in", "--json")
    assert json.loads(shown.stdout)["config"]["secret_access_key"] == "***"
    # Refused without --allow-secret-in-db, as from --option.
    refused = cli(
        tmp_path, "storage", "create", "s3no", "s3://bucket/data",
        "--secret-from-stdin", "secret_access_key", stdin=f"{SECRET}\n",
    )  # fmt: skip
    assert refused.returncode != 0
    assert SECRET not in refused.stdout + refused.stderr


def test_secrets_from_an_option_file(tmp_path: Path) -> None:
    options = tmp_path / "s3.options"
    options.write_text(
        f"# credentials for the bucket\naccess_key_id={KEY_ID}\nsecret_access_key={SECRET}\n"
    )
    options.chmod(0o600)
    result = cli(
        tmp_path, "storage", "create", "s3file", "s3://bucket/data", "--allow-secret-in-db",
        "--option-file", str(options),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = stored_config(tmp_path, "s3file")
    assert (config["access_key_id"], config["secret_access_key"]) == (KEY_ID, SECRET)


def test_bad_secret_input_names_the_flag(tmp_path: Path) -> None:
    empty = cli(
        tmp_path, "storage", "create", "x", "s3://bucket", "--allow-secret-in-db",
        "--secret-from-stdin", "secret_access_key",
    )  # fmt: skip
    assert empty.returncode != 0
    assert "--secret-from-stdin secret_access_key: standard input ended" in empty.stderr
    bad = tmp_path / "bad.options"
    bad.write_text(f"{SECRET}\n")  # a line without KEY=: the value is not echoed
    result = cli(tmp_path, "storage", "create", "y", "s3://bucket", "--option-file", str(bad))
    assert result.returncode != 0
    assert f"--option-file: {bad} line 1 must be KEY=VALUE" in result.stderr
    assert SECRET not in result.stderr
    both = cli(
        tmp_path, "storage", "create", "z", "s3://bucket", "--allow-secret-in-db",
        "--option", "secret_access_key=a", "--secret-from-stdin", "secret_access_key",
        stdin="b\n",
    )  # fmt: skip
    assert both.returncode != 0
    assert 'option "secret_access_key" is given by both --option and --secret-from-stdin' in (
        both.stderr
    )
