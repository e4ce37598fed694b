"""The `dataset-worker` command. Each submodule registers its commands on the one Typer app."""

from __future__ import annotations

import sys

import typer

from dataset_worker.cli import (
    cid,
    commp,
    deal,
    extract,
    fetch,
    manifest,
    operations,
    prep,
    prep_manage,
    prepare,
    provider,
    run,
    serve,
    storage,
    verify,
    wallet,
)
from dataset_worker.cli.common import PlainHelpGroup, root_callback
from dataset_worker.cli.dispatch import invoked_only

app = typer.Typer(
    name="dataset-worker",
    help="Prepare datasets for Filecoin storage deals and run the dataset worker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=PlainHelpGroup,  # help that wraps at any width instead of cutting option names
)
app.callback()(root_callback)
for module in (commp, cid, prep, prep_manage, operations, run, serve, verify, manifest, prepare):
    module.register(app)
for module in (provider, fetch, extract):
    module.register(app)
storage.register(app)
wallet.register(app)
deal.register(app)


def main() -> None:
    """Console-script entry point."""
    # Only the command being run is built (see cli/dispatch.py): a faster start.
    invoked_only(app, sys.argv[1:])()
