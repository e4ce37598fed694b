"""The `dataset-worker` command. Each submodule registers its commands on the one Typer app."""

from __future__ import annotations

import typer

from dataset_worker.cli import cid, commp, prep, run, serve
from dataset_worker.cli.common import root_callback

app = typer.Typer(
    name="dataset-worker",
    help="Prepare datasets for Filecoin storage deals and run the dataset worker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.callback()(root_callback)
for module in (commp, cid, prep, run, serve):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
