"""Build only the command being run: `dataset-worker jobs list` needs one of the ~60 commands.

Before it parses a command line, Typer turns every registered function into a click command,
evaluating all their annotations: about 15 ms for the whole CLI, a tenth of a short command.
`invoked_only(app, args)` returns a copy of the app that holds just the group and command path
`args` names, when it names one without doubt: the first word after the root options (skipped
only when known), then the same inside a group. Anything else (a group's help, an unknown name,
an unknown option, `--`) gets the whole app, so click shows its usual help and errors.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import typer
import typer.main
from typer.models import CommandInfo, TyperInfo


def invoked_only(app: typer.Typer, args: Sequence[str]) -> typer.Typer:
    """`app` reduced to the command path `args` names, or `app` itself when unsure."""
    return _pruned(app, list(args)) or app


def _pruned(app: typer.Typer, args: list[str]) -> typer.Typer | None:
    found = _first_word(args, _callback_options(app))
    if found is None:
        return None
    word, rest = found
    commands = [info for info in app.registered_commands if _command_name(info) == word]
    groups = []
    for info in app.registered_groups:
        name = typer.main.solve_typer_info_defaults(info).name
        if not name:
            return None  # a group without a name lends its commands to this level
        if name == word:
            groups.append(info)
    if len(commands) + len(groups) != 1:
        return None  # unknown (click names it) or registered twice (click picks the last)
    if groups:
        group = copy.copy(groups[0])
        inner = group.typer_instance
        narrowed = _pruned(inner, rest) if inner is not None else None
        if narrowed is not None:
            group.typer_instance = narrowed
        return _copy(app, commands=[], groups=[group])
    return _copy(app, commands=commands, groups=[])


def _command_name(info: CommandInfo) -> str:
    # As Typer names it: the given name, else the function's name in kebab case.
    return info.name or typer.main.get_command_name(getattr(info.callback, "__name__", ""))


def _copy(app: typer.Typer, *, commands: list[CommandInfo], groups: list[TyperInfo]) -> typer.Typer:
    narrowed = copy.copy(app)
    narrowed.registered_commands = commands
    narrowed.registered_groups = groups
    return narrowed


def _callback_options(app: typer.Typer) -> tuple[set[str], set[str]] | None:
    """(options taking a value, flags) of the app's own callback; None when it has arguments."""
    callback = app.registered_callback
    if callback is None or callback.callback is None:
        return set(), set()
    alone = copy.copy(app)
    alone.registered_commands = []
    alone.registered_groups = []
    takes_value: set[str] = set()
    flags: set[str] = set()
    for param in typer.main.get_command(alone).params:
        if param.param_type_name != "option":
            return None
        names = {*param.opts, *param.secondary_opts}
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            flags.update(names)
        else:
            takes_value.update(names)
    return takes_value, flags


def _first_word(
    args: list[str], options: tuple[set[str], set[str]] | None
) -> tuple[str, list[str]] | None:
    """The first word of `args` after the known options, and what follows it."""
    if options is None:
        return None
    takes_value, flags = options
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            return arg, args[index + 1 :]
        if arg in takes_value:
            index += 2
        elif arg in flags or arg.partition("=")[0] in takes_value:
            index += 1
        else:
            return None  # --help, --, or an option this level does not know
    return None
