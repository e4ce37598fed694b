"""The CLI's own handling of Typer: plain values converted without pydantic (cli/params.py), and
only the invoked command built (cli/dispatch.py), both giving what Typer alone gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from dataset_worker.cli import app
from dataset_worker.cli.dispatch import invoked_only
from dataset_worker.cli.params import PlainConversion

# Values a user may type for each kind, the odd spellings and mistakes included.
SAMPLES: dict[str, list[Any]] = {
    "str": ["abc", "", " spaced ", "ünïcode", "-x", None],
    "bool": [True, False, None, "yes"],
    "int": ["0", "7", "-5", "007", "+7", " 7", "1_0", "1.5", "1e3", "many", "", 50, None],
    "path": ["file.bin", "", "a/b/../c", "~/x", None],
    "str-list": [("a", "b"), ["x"], (), None],
}


def _plain_params() -> list[tuple[Any, Any, str]]:
    """(command, parameter, kind) of every parameter converted here, over the whole CLI."""
    found: list[tuple[Any, Any, str]] = []

    def walk(command: Any) -> None:
        for param in command.params:
            conversion = getattr(param, "_runtime_param", None)
            if isinstance(conversion, PlainConversion):
                found.append((command, param, conversion._kind))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return found


def _outcome(conversion: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        return "value", conversion.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()


def test_plain_values_convert_as_typer_converts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.bin").write_bytes(b"x")
    params = _plain_params()
    kinds = {kind for _, _, kind in params}
    assert kinds == set(SAMPLES)  # every kind is in use, so each is checked below
    assert len(params) > 60
    for command, param, kind in params:
        ctx = typer.Context(command)
        typer_own = build_runtime_param(param.type_descriptor)
        for value in SAMPLES[kind]:
            ours = _outcome(param._runtime_param, value, param, ctx)
            theirs = _outcome(typer_own, value, param, ctx)
            assert ours == theirs, (command.name, param.name, value)
            assert type(ours[1]) is type(theirs[1]), (command.name, param.name, value)


def _heavy_after(*args: str) -> list[str]:
    """The heavy libraries a fresh Python has loaded after running the CLI with `args`."""
    code = (
        "import sys\n"
        "from dataset_worker.cli import main\n"
        f"sys.argv = ['dataset-worker', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = {'pydantic', 'rich', 'sqlalchemy'} & {m.split('.')[0] for m in sys.modules}\n"
        "print('LOADED', *sorted(heavy), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASET_WORKER_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    marker = next(line for line in result.stderr.splitlines() if line.startswith("LOADED"))
    return marker.split()[1:]


def test_commp_and_help_load_no_pydantic(tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    state = str(tmp_path / "state")
    # Options, an argument and the --help flag all go through the plain conversions.
    assert _heavy_after("--state-dir", state, "commp", str(small)) == []
    assert _heavy_after("--state-dir", state, "commp", "--json", str(small)) == []
    assert _heavy_after("commp", "--help") == []
    assert _heavy_after("--help") == []


# --- only the invoked command is built ------------------------------------------------------------


def _tree(command: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    found = {path: command}
    for name, sub in getattr(command, "commands", {}).items():
        found.update(_tree(sub, (*path, name)))
    return found


def _shape(command: Any) -> tuple[Any, ...]:
    """What parsing and help depend on."""
    params = [
        (p.name, tuple(p.opts), tuple(p.secondary_opts), p.required, p.default, p.nargs)
        for p in command.params
    ]
    return command.name, command.help, command.short_help, tuple(params)


def test_each_command_is_built_alone_and_as_in_the_whole_app() -> None:
    whole = _tree(typer.main.get_command(app))
    leaves = [path for path, command in whole.items() if not hasattr(command, "commands")]
    assert len(leaves) > 30
    for path in leaves:
        for args in ([*path], ["--state-dir", "s", *path, "x"], ["--database-url=u", *path]):
            narrowed = _tree(typer.main.get_command(invoked_only(app, args)))
            # The path down to the command, nothing beside it.
            assert sorted(narrowed) == [path[:depth] for depth in range(len(path) + 1)], args
            assert _shape(narrowed[path]) == _shape(whole[path]), args
            assert _shape(narrowed[()]) == _shape(whole[()])


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["nothing-like-it"],
        ["--state-dir"],
        ["--unknown", "jobs", "list"],
        ["--", "jobs", "list"],
    ],
)
def test_anything_unclear_gets_the_whole_app(args: list[str]) -> None:
    assert invoked_only(app, args) is app


def test_a_group_keeps_all_its_commands_for_its_help_and_errors() -> None:
    for args in (["prep"], ["prep", "--help"], ["prep", "stats"]):
        narrowed = typer.main.get_command(invoked_only(app, args))
        assert list(narrowed.commands) == ["prep"]  # type: ignore[attr-defined]
        whole = typer.main.get_command(app).commands["prep"]  # type: ignore[attr-defined]
        assert list(narrowed.commands["prep"].commands) == list(whole.commands)  # type: ignore[attr-defined]


def test_the_installed_typer_is_within_the_pinned_series_and_has_the_internals_used() -> None:
    import tomllib
    from importlib.metadata import version

    import typer._param_types
    import typer.core
    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(r) for r in requirements if Requirement(r).name == "typer"]
    bounds = {spec.operator: spec.version for spec in pin.specifier}
    assert set(bounds) == {">=", "<"}, "Typer needs both bounds: params.py uses its internals"
    installed = version("typer")
    assert pin.specifier.contains(installed), f"typer {installed} is outside {pin.specifier}"
    # Each internal cli/params.py and cli/dispatch.py rely on, as the pinned series has them.
    assert callable(build_runtime_param) and callable(typer._param_types.coerce_cli_path)
    assert callable(typer.main.solve_typer_info_defaults)
    assert callable(typer.main.get_command_name)
    command = typer.main.get_command(app)
    option = next(p for p in command.params if isinstance(p, typer.core.TyperOption))
    assert hasattr(option, "_runtime_param")
