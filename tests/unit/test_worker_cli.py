from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dataset_worker.cli import app
from dataset_worker.cli.run import rewrite_bool_flags

runner = CliRunner()


def test_go_style_booleans_are_rewritten() -> None:
    assert rewrite_bool_flags(
        [
            "--enable-scan=false",
            "--enable-pack=true",
            "--enable-dag=0",
            "--exit-on-complete=T",
            "-exit-on-error=FALSE",
            "--concurrency=2",
            "--min-interval",
            "1s",
        ]
    ) == [
        "--no-enable-scan",
        "--enable-pack",
        "--no-enable-dag",
        "--exit-on-complete",
        "--no-exit-on-error",
        "--concurrency=2",
        "--min-interval",
        "1s",
    ]


def test_arguments_after_double_dash_are_left_alone() -> None:
    assert rewrite_bool_flags(["--", "--enable-scan=false"]) == ["--", "--enable-scan=false"]


def test_a_non_boolean_value_is_rejected() -> None:
    with pytest.raises(typer.BadParameter, match="'maybe' is not a boolean"):
        rewrite_bool_flags(["--enable-scan=maybe"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency must be between 1 and 64, got 0"),
        (["--concurrency", "65"], "--concurrency must be between 1 and 64, got 65"),
        (["--max-attempts", "0"], "--max-attempts must be between 1 and 100, got 0"),
        (["--min-interval", "5x"], '--min-interval: invalid duration "5x"'),
        (["--max-interval", "1d"], '--max-interval: invalid duration "1d"'),
        (["--min-interval", "0"], "--min-interval must be a positive duration, got 0s"),
        (["--max-interval", "-5s"], "--max-interval must be a positive duration, got -5s"),
        (
            ["--min-interval", "10s", "--max-interval", "5s"],
            "--min-interval (10s) must not be greater than --max-interval (5s)",
        ),
        (
            ["--heartbeat-interval", "5s", "--stale-after", "6s"],
            "--stale-after (6s) must be at least twice --heartbeat-interval (5s)",
        ),
        (
            ["--enable-scan=false", "--enable-pack=false", "--no-enable-dag"],
            "no job types enabled",
        ),
        (["--log-level", "loud"], "--log-level must be debug, info, warning or error"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["--state-dir", str(tmp_path), "run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "dataset-worker.db").exists()  # rejected before touching the DB


def test_bad_go_boolean_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--state-dir", str(tmp_path), "run", "--enable-pack=maybe"])
    assert result.exit_code == 2
    assert "'maybe' is not a boolean" in result.stderr


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`run` configures the root logger (setup_logging); give the other tests theirs back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_an_unreachable_database_exits_1(tmp_path: Path) -> None:
    url = "postgresql://nobody:secret@127.0.0.1:1/none"  # port 1: connection refused at once
    result = runner.invoke(app, ["--state-dir", str(tmp_path), "--database-url", url, "run"])
    assert result.exit_code == 1
    assert (
        "cannot open the database postgresql+psycopg://nobody:***@127.0.0.1:1/none" in result.stderr
    )
    assert "secret" not in result.stderr
