"""CLI commands `storage create|list|show|check|delete`: named storages (folders, S3 buckets)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dataset_worker.cli.common import JsonOpt, database, fail, print_json

storage_app = typer.Typer(
    help="Named storages: local folders and S3-compatible buckets.", no_args_is_help=True
)
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Storage name or id.")]


def register(app: typer.Typer) -> None:
    """Add the `storage` command group to the app."""
    app.add_typer(storage_app, name="storage")


def _parse_options(options: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f'--option "{item}" must be KEY=VALUE')
        parsed[key.strip()] = value
    return parsed


def _read_option_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of `path` (blank lines and # comments skipped): secrets stay out of argv,
    which every user of the host can read in /proc."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"--option-file: {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"--option-file: {path} is not UTF-8 text")
    parsed: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            fail(f"--option-file: {path} line {number} must be KEY=VALUE")  # no value echoed
        parsed[key.strip()] = value.strip()
    return parsed


def _read_stdin_secrets(keys: list[str]) -> dict[str, str]:
    """One line of standard input per key, in the order given."""
    secrets: dict[str, str] = {}
    for key in keys:
        line = sys.stdin.readline()
        if not line:
            fail(f"--secret-from-stdin {key}: standard input ended before its line")
        value = line.rstrip("\r\n")
        if not value:
            fail(f"--secret-from-stdin {key}: its line on standard input is empty")
        secrets[key] = value
    return secrets


def _merged_options(sources: list[tuple[str, dict[str, str]]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    seen: dict[str, str] = {}
    for flag, values in sources:
        for key, value in values.items():
            if key in merged:
                fail(f'option "{key}" is given by both {seen[key]} and {flag}')
            merged[key], seen[key] = value, flag
    return merged


def _scan_shards(url: str, shards: int | None) -> dict[str, str]:
    """`--scan-shards` as the S3 config key; other storage types list one folder at a time."""
    if shards is None:
        return {}
    if not url.startswith("s3://"):
        typer.echo("--scan-shards applies to S3 storages only; ignored", err=True)
        return {}
    return {"scan_shards": str(shards)}


@storage_app.command("create")
def create_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique name for the storage.")],
    url: Annotated[str, typer.Argument(help="s3://bucket[/prefix], or an absolute folder.")],
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", metavar="URL", help="S3-compatible endpoint URL.")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", metavar="R", help="S3 region.")] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", metavar="P", help="AWS profile for credentials.")
    ] = None,
    anonymous: Annotated[
        bool, typer.Option("--anonymous", help="Send unsigned requests (public buckets).")
    ] = False,
    scan_shards: Annotated[
        int | None,
        typer.Option(
            "--scan-shards",
            metavar="N",
            help="S3: folders a scan lists ahead in parallel (1 to 32; default 8; 1: one "
            "stream). Ignored for local and SFTP storages.",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", metavar="KEY=VALUE", help="More config, e.g. part_size=16777216."),
    ] = None,
    option_file: Annotated[
        Path | None,
        typer.Option(
            "--option-file",
            metavar="FILE",
            help="More config as KEY=VALUE lines (# comments allowed): keeps secrets out of the "
            "command line, which other users of the host can read.",
        ),
    ] = None,
    secret_from_stdin: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-from-stdin",
            metavar="KEY",
            help="Read the value of option KEY (e.g. secret_access_key) from a line of standard "
            "input; repeat for several keys, one line each, in order.",
        ),
    ] = None,
    allow_secret_in_db: Annotated[
        bool,
        typer.Option(
            "--allow-secret-in-db",
            help="Allow access_key_id/secret_access_key/session_token options (stored in the DB).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a named storage. Credentials come from the AWS environment, shared files or a
    profile; they are stored only with --allow-secret-in-db, and always shown as ***. To store
    one, pass it with --secret-from-stdin or --option-file, never --option (argv is public)."""
    from dataset_worker.prep.errors import InvalidParameter
    from dataset_worker.prep.storages import CreateStorageRequest, create_storage

    request = CreateStorageRequest(
        name=name,
        url=url,
        endpoint=endpoint,
        region=region,
        profile=profile,
        anonymous=anonymous,
        options=_merged_options(
            [
                ("--option", _parse_options(option or [])),
                ("--option-file", _read_option_file(option_file) if option_file else {}),
                ("--secret-from-stdin", _read_stdin_secrets(secret_from_stdin or [])),
                ("--scan-shards", _scan_shards(url, scan_shards)),
            ]
        ),
        allow_secret_in_db=allow_secret_in_db,
    )
    with database(ctx) as db:
        try:
            view = create_storage(db, request)
        except InvalidParameter as exc:
            fail(f"{exc.field}: {exc}" if exc.field else str(exc))
    if as_json:
        print_json(view.model_dump(mode="json", by_alias=True))
        return
    typer.echo(f'created storage "{view.name}" (id {view.id}): {view.type} {view.path}')


@storage_app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List every storage with the preparations that use it."""
    from rich.console import Console  # rich inside the commands: the CLI loads fast
    from rich.markup import escape
    from rich.table import Table

    from dataset_worker.prep.storages import list_storages

    with database(ctx) as db:
        views = list_storages(db)
    if as_json:
        print_json([v.model_dump(mode="json", by_alias=True) for v in views])
        return
    if not views:
        typer.echo("no storages")
        return
    table = Table("ID", "NAME", "TYPE", "PATH", "USED BY")
    for v in views:
        table.add_row(
            str(v.id), escape(v.name), v.type, escape(v.path), escape(", ".join(v.preparations))
        )
    Console(width=200).print(table)


@storage_app.command("show")
def show_command(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Show one storage; secrets in its config are shown as ***."""
    from rich.console import Console
    from rich.markup import escape

    from dataset_worker.prep.storages import get_storage

    with database(ctx) as db:
        view = get_storage(db, name)
    if as_json:
        print_json(view.model_dump(mode="json", by_alias=True))
        return
    console = Console(width=200)
    console.print(f"Name:    {escape(view.name)} (id {view.id})", highlight=False)
    console.print(f"Type:    {view.type}", highlight=False)
    console.print(f"Path:    {escape(view.path)}", highlight=False)
    for key, value in sorted(view.config.items()):
        console.print(f"Config:  {escape(key)} = {escape(str(value))}", highlight=False)
    console.print(f"Used by: {escape(', '.join(view.preparations) or '-')}", highlight=False)


@storage_app.command("check")
def check_command(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Read the storage's root and list its first entries; exit 1 if it cannot be read."""
    from dataset_worker.prep.storages import check_storage

    with database(ctx) as db:
        result = check_storage(db, name)
    if as_json:
        print_json(result.model_dump(mode="json", by_alias=True))
    else:
        state = "ok" if result.ok else "FAILED"
        typer.echo(f'storage "{result.name}": {state}: {result.message}')
        for entry in result.sample:
            typer.echo(f"  {entry}")
    if not result.ok:
        raise typer.Exit(1)


@storage_app.command("delete")
def delete_command(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Delete a storage that no preparation uses (its files are not touched)."""
    from dataset_worker.prep.storages import delete_storage

    with database(ctx) as db:
        view = delete_storage(db, name)
    if as_json:
        print_json(view.model_dump(mode="json", by_alias=True))
        return
    typer.echo(f'deleted storage "{view.name}" (id {view.id})')
