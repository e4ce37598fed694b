"""CLI commands `wallet create|import|list|show|delete|export`: Filecoin keys in the state dir.

Keys are encrypted at rest under <state dir>/wallet (wallet/keystore.py). The passphrase comes
from DATASET_WORKER_WALLET_PASSPHRASE or a prompt, and a key to import from a file or stdin:
never from the command line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from dataset_worker.cli.common import fail, settings
from dataset_worker.cli.prep import JsonOpt

if TYPE_CHECKING:
    from dataset_worker.wallet.address import Network
    from dataset_worker.wallet.keys import KeyKind
    from dataset_worker.wallet.keystore import Keystore, WalletEntry

T = TypeVar("T")

wallet_app = typer.Typer(
    help="Filecoin wallet keys (secp256k1 f1/t1 and delegated f410/t410), encrypted in the "
    "state dir.",
    no_args_is_help=True,
)
AddressArg = Annotated[
    str, typer.Argument(metavar="ADDRESS", help="f1…/t1…, f410…/t410… or the 0x form.")
]
NetworkOpt = Annotated[
    str,
    typer.Option(
        "--network", metavar="NET", help="mainnet (f… addresses) or calibnet (t… addresses)."
    ),
]
MAX_KEY_TEXT = 4096  # a Lotus export is about 150 characters; more is not a key


def register(app: typer.Typer) -> None:
    """Add the `wallet` command group to the app."""
    app.add_typer(wallet_app, name="wallet")


@wallet_app.command("create")
def create_command(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Option(
            "--type",
            metavar="TYPE",
            help="secp256k1 (an f1/t1 address) or delegated (f410/t410, with a 0x address).",
        ),
    ] = "secp256k1",
    network: NetworkOpt = "mainnet",
    as_json: JsonOpt = False,
) -> None:
    """Create a new random key and print its address."""
    checked_kind, checked_network = _kind(kind), _network(network)
    store = _store(ctx, confirm=True)
    _show(_run(lambda: store.create(checked_kind, checked_network)), as_json)


@wallet_app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="Read the key from FILE (default: stdin)."),
    ] = None,
    network: NetworkOpt = "mainnet",
    as_json: JsonOpt = False,
) -> None:
    """Import a key: a Lotus `wallet export` line, a raw secp256k1 key in hex, or an Ethereum
    key (0x…, a delegated f410 address). Read from --file or stdin, never from the arguments."""
    from dataset_worker.wallet.formats import parse_key_text

    checked_network = _network(network)
    text = _read_key_text(file)
    try:
        parsed = parse_key_text(text)
    except ValueError as exc:
        fail(f"{'stdin' if file is None else file}: {exc}")
    store = _store(ctx, confirm=True)
    entry = _run(lambda: store.import_key(parsed.private_key, parsed.kind, checked_network))
    _show(entry, as_json)


@wallet_app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the wallet's addresses (needs no passphrase)."""
    from dataset_worker.wallet.keystore import Keystore

    entries = _run(lambda: Keystore(settings(ctx).state_dir, "").list())
    if as_json:
        typer.echo(json.dumps([entry.to_json() for entry in entries], indent=2))
        return
    for entry in entries:
        typer.echo(_line(entry))


@wallet_app.command("show")
def show_command(ctx: typer.Context, address: AddressArg, as_json: JsonOpt = False) -> None:
    """Show one address of the wallet: type, network and 0x form (needs no passphrase)."""
    from dataset_worker.wallet.keystore import Keystore

    _show(_run(lambda: Keystore(settings(ctx).state_dir, "").show(address)), as_json)


@wallet_app.command("delete")
def delete_command(ctx: typer.Context, address: AddressArg) -> None:
    """Delete a key from the wallet, once the passphrase has opened it. There is no undo:
    export it first if it may hold funds."""
    store = _store(ctx)
    entry = _run(lambda: store.delete(address))
    typer.echo(f"deleted {entry.address}")


@wallet_app.command("export")
def export_command(
    ctx: typer.Context,
    address: AddressArg,
    yes: Annotated[
        bool, typer.Option("--yes", help="Really print the private key to stdout.")
    ] = False,
) -> None:
    """Print a key in Lotus `wallet export` form (hex of the KeyInfo JSON), for `lotus wallet
    import` or `wallet import`. Prints the private key: only with --yes."""
    if not yes:
        fail("export prints the private key to stdout: add --yes to do it", code=2)
    store = _store(ctx)
    typer.echo(_run(lambda: store.export(address)))


# --- helpers ------------------------------------------------------------------------------------


def _store(ctx: typer.Context, *, confirm: bool = False) -> Keystore:
    """The state dir's key store, opened with the passphrase (asked twice for a new wallet)."""
    from dataset_worker.wallet.keystore import Keystore, WalletError
    from dataset_worker.wallet.passphrase import wallet_passphrase

    state_dir = settings(ctx).state_dir
    try:
        empty = not Keystore(state_dir, "").list()
        return Keystore(state_dir, wallet_passphrase(confirm=confirm and empty))
    except WalletError as exc:
        fail(str(exc))


def _run(action: Callable[[], T]) -> T:
    """The action's result; a WalletError is printed as the command's error."""
    from dataset_worker.wallet.keystore import WalletError

    try:
        return action()
    except WalletError as exc:
        fail(str(exc))


def _kind(text: str) -> KeyKind:
    from dataset_worker.wallet.keys import KINDS

    if text not in KINDS:
        fail(f"--type must be one of {', '.join(KINDS)}, got {text!r}", code=2)
    return text


def _network(text: str) -> Network:
    from dataset_worker.wallet.address import NETWORKS

    if text not in NETWORKS:
        fail(f"--network must be one of {', '.join(NETWORKS)}, got {text!r}", code=2)
    return text


def _read_key_text(file: Path | None) -> str:
    """The key text from FILE or stdin (typed without echo when stdin is a terminal)."""
    import getpass

    if file is None:
        if sys.stdin.isatty():
            return getpass.getpass("Private key (hidden): ")
        text = sys.stdin.read(MAX_KEY_TEXT + 1)
        source = "stdin"
    else:
        try:
            with file.open(encoding="utf-8") as stream:
                text = stream.read(MAX_KEY_TEXT + 1)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--file {file}: cannot read it ({exc.__class__.__name__}: {exc})")
        source = str(file)
    if len(text) > MAX_KEY_TEXT:
        fail(f"{source}: more than {MAX_KEY_TEXT} characters, not a key")
    return text


def _line(entry: WalletEntry) -> str:
    eth = f"  {entry.eth_address}" if entry.eth_address else ""
    return f"{entry.address}  {entry.kind}  {entry.network}{eth}"


def _show(entry: WalletEntry, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(entry.to_json(), indent=2))
    else:
        typer.echo(_line(entry))
