"""The CLI starts fast: loading it imports no database, server or rendering library, and its
help wraps instead of cutting option names.

Command modules import heavy modules inside their command functions (see cli/common.py); the
constants they repeat to stay light are checked against their sources here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from dataset_worker.cli import app

# The libraries `import dataset_worker.cli` must not load (each costs tens of milliseconds).
HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "pydantic", "rich")


def _loaded_heavy(module: str, *, alone: bool = False) -> list[str]:
    """The HEAVY top-level packages in sys.modules after importing `module` in a fresh Python.

    `alone`: without running dataset_worker/cli/__init__.py (which imports every command module),
    to find out which command module is the heavy one.
    """
    stub = (
        "import types, dataset_worker\n"
        "package = types.ModuleType('dataset_worker.cli')\n"
        "package.__path__ = [dataset_worker.__path__[0] + '/cli']\n"
        "sys.modules['dataset_worker.cli'] = package\n"
    )
    code = (
        "import sys, importlib\n"
        + (stub if alone else "")
        + f"importlib.import_module({module!r})\n"
        + f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_importing_the_cli_loads_no_heavy_library() -> None:
    loaded = _loaded_heavy("dataset_worker.cli")
    if loaded:
        # Name the command modules to fix: each one imported on its own.
        import dataset_worker.cli as package

        modules = sorted(
            {
                value.__name__
                for value in vars(package).values()
                if isinstance(value, ModuleType)
                and value.__name__.startswith("dataset_worker.cli.")
            }
        )
        culprits = {name: heavy for name in modules if (heavy := _loaded_heavy(name, alone=True))}
        pytest.fail(
            f"import dataset_worker.cli loads {loaded}; move these imports into the command "
            f"functions of: {culprits}"
        )


def test_the_admin_server_starts_without_the_storage_clients() -> None:
    # The server validates storages (storage routes) but opens none: boto3 and paramiko, a
    # sixth of its start-up, load only in a process that opens an S3 or SFTP storage.
    code = (
        "import sys, dataset_worker.api.app\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', "
        "'paramiko'})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_the_repeated_constants_match_their_sources() -> None:
    from dataset_worker import defaults
    from dataset_worker.cli import cid, run
    from dataset_worker.content.chunker import DEFAULT_RANGE_SIZE
    from dataset_worker.prep import jobs
    from dataset_worker.worker.runtime import process, retry

    assert cid.RANGE_SIZE == DEFAULT_RANGE_SIZE
    assert (run.EXIT_ERROR, run.EXIT_USAGE) == (process.EXIT_ERROR, process.EXIT_USAGE)
    assert run.DEFAULT_MAX_ATTEMPTS == retry.DEFAULT_MAX_ATTEMPTS
    assert (jobs.DEFAULT_LIMIT, jobs.MAX_LIMIT) == (50, 1000)
    assert (defaults.DEFAULT_MAX_SIZE, defaults.DEFAULT_MIN_PIECE_SIZE) == ("31.5GiB", "1MiB")


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under `group` (typer's vendored click objects) with its name path."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, command in group.commands.items():
        found.append(((*path, name), command))
        if hasattr(command, "commands"):
            found.extend(_commands(command, (*path, name)))
    return found


def _help_at_80_columns(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_help_at_80_columns_shows_every_option_whole() -> None:
    root = typer.main.get_command(app)
    checked = 0
    for path, command in [((), root), *_commands(root)]:
        text = _help_at_80_columns(*path)
        assert max(len(line) for line in text.splitlines()) <= 80, text
        for param in command.params:
            for option in (*param.opts, *param.secondary_opts):
                if option.startswith("-"):
                    assert option in text, f"{' '.join(path)} --help lacks {option}:\n{text}"
                    checked += 1
    assert checked > 40  # every command was looked at, the long flags of `run` among them


def test_the_installed_command_wraps_its_help_too() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dataset_worker", "run", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--exit-on-complete / --no-exit-on-complete" in result.stdout
    assert "…" not in result.stdout and "╭" not in result.stdout
