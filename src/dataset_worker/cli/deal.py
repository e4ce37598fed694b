"""CLI commands `deal make|list|show` and `deal schedule create|list|pause|resume|delete`:
storage deals with providers over Curio's Market 2.0 (docs/deals.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataset_worker.cli.common import JsonOpt, database, fail, settings

if TYPE_CHECKING:
    from dataset_worker.deals.views import DealView, ScheduleView

deal_app = typer.Typer(
    help="Storage deals with providers over Curio's Market 2.0 HTTP API.", no_args_is_help=True
)
schedule_app = typer.Typer(
    help="Deal schedules: replicas of a preparation's pieces, made over time by the worker.",
    no_args_is_help=True,
)
deal_app.add_typer(schedule_app, name="schedule")

PrepArg = Annotated[str, typer.Argument(metavar="PREP", help="Preparation name or id.")]
WalletOpt = Annotated[
    str,
    typer.Option(
        "--wallet",
        metavar="ADDR",
        help="Client wallet (f1…/t1…) in the keystore; its passphrase comes from "
        "DATASET_WORKER_WALLET_PASSPHRASE.",
    ),
]
DurationOpt = Annotated[
    int, typer.Option("--duration", metavar="EPOCHS", help="Deal duration in epochs (≥ 518400).")
]
TemplateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--url-template",
        metavar="URL",
        help="Where the SP downloads each piece, e.g. 'http://host:7777/piece/{pieceCid}' "
        "({pieceCidV2} works too); repeat for fallbacks. Default: the content provider's "
        "public URL (DATASET_WORKER_PUBLIC_URL).",
    ),
]
DEFAULT_DURATION = 1_540_800  # deals/make.py DEFAULT_DURATION (535 days), kept here to stay light


def register(app: typer.Typer) -> None:
    """Add the `deal` command group to the app."""
    app.add_typer(deal_app, name="deal")


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contextmanager
def _deal_errors() -> Iterator[None]:
    from dataset_worker.deals.errors import DealError, InvalidDealRequest

    try:
        yield
    except InvalidDealRequest as exc:
        fail(str(exc))
    except DealError as exc:
        fail(str(exc))


@deal_app.command("make")
def make_command(
    ctx: typer.Context,
    preparation: PrepArg,
    provider: Annotated[
        str, typer.Option("--provider", metavar="ID", help="Storage provider, e.g. f01000.")
    ],
    sp_url: Annotated[
        str, typer.Option("--sp-url", metavar="URL", help="The SP's Market 2.0 base URL.")
    ],
    wallet: WalletOpt,
    piece: Annotated[
        list[str] | None,
        typer.Option("--piece", metavar="PIECECID", help="Only this piece (v1 CID); repeatable."),
    ] = None,
    product: Annotated[str, typer.Option("--product", help="Curio product.")] = "ddo_v1",
    duration: DurationOpt = DEFAULT_DURATION,
    start_epoch: Annotated[
        int | None, typer.Option("--start-epoch", metavar="N", help="Epoch to start by.")
    ] = None,
    allocation_id: Annotated[
        int | None, typer.Option("--allocation-id", metavar="N", help="DataCap allocation id.")
    ] = None,
    url_template: TemplateOpt = None,
    no_indexing: Annotated[
        bool, typer.Option("--no-indexing", help="Ask the SP not to index (nor announce).")
    ] = False,
    no_announce: Annotated[
        bool, typer.Option("--no-announce", help="Ask the SP not to announce to IPNI.")
    ] = False,
    attempts: Annotated[
        int, typer.Option("--attempts", min=1, max=30, help="Sends per deal in this run.")
    ] = 5,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the deal bodies; send and store nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Propose a deal for each piece of a preparation to one storage provider.

    Each deal is recorded before it is sent, with its ULID; a retry (timeout, 5xx, 429/503)
    sends the same ULID again, and running the command again re-sends what is unanswered.
    """
    from dataset_worker.deals.make import MakeRequest, make_deals, plan
    from dataset_worker.deals.runner import DealRunner
    from dataset_worker.deals.signer import load_signer
    from dataset_worker.deals.tuning import Tuning

    config = settings(ctx)
    request_fields: dict[str, Any] = {
        "preparation": preparation,
        "provider": provider,
        "sp_url": sp_url,
        "pieces": piece or [],
        "product": product,
        "duration": duration,
        "start_epoch": start_epoch,
        "allocation_id": allocation_id,
        "url_templates": url_template or [],
        "indexing": not no_indexing,
        "announce_payload": not (no_announce or no_indexing),
    }
    with database(ctx) as db, _deal_errors():
        if dry_run:
            from dataset_worker.wallet.address import parse_address

            try:
                client = str(parse_address(wallet))
            except ValueError as exc:
                fail(f"--wallet: {exc}")
            _, _, planned = plan(db, MakeRequest(client=client, **request_fields))
            bodies = [item.body for item in planned]
            if as_json:
                _print_json(bodies)
            else:
                for body in bodies:
                    typer.echo(json.dumps(body, separators=(",", ":")))
            return
        signer = load_signer(config.state_dir, wallet)
        try:
            tuning = Tuning.from_env()
        except ValueError as exc:
            fail(str(exc))
        runner = DealRunner(db, lambda _address: signer, tuning)
        try:
            views = make_deals(
                db, MakeRequest(client=signer.address, **request_fields), runner, attempts
            )
        finally:
            runner.close()
    if as_json:
        _print_json([v.model_dump(mode="json", by_alias=True) for v in views])
    else:
        _print_deals(views)
    if any(v.state in ("rejected", "failed") for v in views):
        raise typer.Exit(1)


def _print_deals(views: list[DealView]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from dataset_worker.cli.common import table_console

    if not views:
        typer.echo("no deals")
        return
    table = Table("ID", "ULID", "PIECE", "PROVIDER", "STATE", "SP STATE", "LAST ANSWER")
    for v in views:
        answer = f"{v.last_status or ''} {v.last_reason or ''}".strip()
        table.add_row(
            str(v.id),
            v.ulid,
            v.piece_cid,
            v.provider,
            v.state,
            v.sp_state or "",
            escape(answer),
        )
    table_console().print(table)


@deal_app.command("list")
def list_command(
    ctx: typer.Context,
    prep: Annotated[
        str | None, typer.Option("--prep", metavar="PREP", help="Only this preparation.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", metavar="ID", help="Only this provider.")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", help="Only this state: proposing, accepted, complete, failed, rejected."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List deals, newest first."""
    from dataset_worker.deals.queries import list_deals

    with database(ctx) as db, _deal_errors():
        views = list_deals(db, preparation=prep, provider=provider, state=state)
    if as_json:
        _print_json([v.model_dump(mode="json", by_alias=True) for v in views])
        return
    _print_deals(views)


@deal_app.command("show")
def show_command(
    ctx: typer.Context,
    deal: Annotated[str, typer.Argument(metavar="ID", help="Deal id or ULID.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one deal with the body that was sent and the SP's last answer."""
    from dataset_worker.deals.queries import get_deal

    with database(ctx) as db, _deal_errors():
        view = get_deal(db, deal)
    if as_json:
        _print_json(view.model_dump(mode="json", by_alias=True))
        return
    for label, value in (
        ("Deal", f"{view.id} ({view.ulid})"),
        ("Preparation", f"{view.preparation or '-'} (id {view.preparation_id})"),
        ("Piece", f"{view.piece_cid} (v2 {view.piece_cid_v2})"),
        ("Provider", f"{view.provider} at {view.sp_url}"),
        ("Client", view.client),
        ("Product", view.product),
        ("State", view.state + (f" (SP: {view.sp_state})" if view.sp_state else "")),
        ("Attempts", str(view.attempts)),
        ("Last answer", f"{view.last_status or '-'} {view.last_reason or ''}".strip()),
        ("Schedule", str(view.schedule_id) if view.schedule_id else "-"),
    ):
        typer.echo(f"{label + ':':<13}{value}")


# --- schedules --------------------------------------------------------------------------------


@schedule_app.command("create")
def schedule_create_command(
    ctx: typer.Context,
    preparation: PrepArg,
    provider: Annotated[
        list[str],
        typer.Option("--provider", metavar="ID", help="A provider (repeat; pair with --sp-url)."),
    ],
    sp_url: Annotated[
        list[str],
        typer.Option("--sp-url", metavar="URL", help="Each provider's Market 2.0 URL, in order."),
    ],
    wallet: WalletOpt,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Deals per piece.")] = 1,
    per_day: Annotated[
        int | None, typer.Option("--per-day", min=1, help="Deals per 24 hours at most.")
    ] = None,
    total: Annotated[
        int | None, typer.Option("--total", min=1, help="Deals in all at most.")
    ] = None,
    start_epoch_offset: Annotated[
        int | None,
        typer.Option("--start-epoch-offset", metavar="EPOCHS", help="Start epoch = now + this."),
    ] = None,
    duration: DurationOpt = DEFAULT_DURATION,
    url_template: Annotated[
        str | None,
        typer.Option("--url-template", metavar="URL", help="Download URL with {pieceCid}."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a schedule: the worker makes `--replicas` deals per piece with distinct providers,
    within --per-day and --total."""
    from pydantic import ValidationError

    from dataset_worker.deals.schedules import CreateScheduleRequest, create_schedule
    from dataset_worker.deals.views import ProviderTarget
    from dataset_worker.wallet.address import parse_address

    if len(provider) != len(sp_url):
        fail(f"give one --sp-url per --provider: got {len(provider)} and {len(sp_url)}")
    try:
        client = str(parse_address(wallet))
    except ValueError as exc:
        fail(f"--wallet: {exc}")
    try:
        request = CreateScheduleRequest(
            preparation=preparation,
            providers=[
                ProviderTarget(provider=p, sp_url=u) for p, u in zip(provider, sp_url, strict=True)
            ],
            client=client,
            replicas=replicas,
            per_day=per_day,
            total=total,
            start_epoch_offset=start_epoch_offset,
            duration=duration,
            url_template=url_template,
        )
    except ValidationError as exc:
        fail(str(exc.errors()[0]["msg"]))
    with database(ctx) as db, _deal_errors():
        view = create_schedule(db, request)
    _print_schedule(view, as_json)


def _print_schedule(view: ScheduleView, as_json: bool) -> None:
    if as_json:
        _print_json(view.model_dump(mode="json", by_alias=True))
        return
    providers = ", ".join(p.provider for p in view.providers)
    limits = f"per day {view.per_day or '-'}, total {view.total or '-'}"
    typer.echo(
        f"schedule {view.id} ({view.state}): {view.preparation} → {providers}, "
        f"{view.replicas} replica(s), {limits}, {view.deals_made} deal(s) made"
    )


ScheduleArg = Annotated[str, typer.Argument(metavar="ID", help="Schedule id.")]


@schedule_app.command("list")
def schedule_list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the deal schedules."""
    from dataset_worker.deals.schedules import list_schedules

    with database(ctx) as db, _deal_errors():
        views = list_schedules(db)
    if as_json:
        _print_json([v.model_dump(mode="json", by_alias=True) for v in views])
        return
    if not views:
        typer.echo("no schedules")
    for view in views:
        _print_schedule(view, False)


@schedule_app.command("pause")
def schedule_pause_command(
    ctx: typer.Context, schedule: ScheduleArg, as_json: JsonOpt = False
) -> None:
    """Pause a schedule: it claims no new deals (claimed ones are still sent and polled)."""
    from dataset_worker.deals.schedules import PAUSED, set_schedule_state

    with database(ctx) as db, _deal_errors():
        view = set_schedule_state(db, schedule, PAUSED)
    _print_schedule(view, as_json)


@schedule_app.command("resume")
def schedule_resume_command(
    ctx: typer.Context, schedule: ScheduleArg, as_json: JsonOpt = False
) -> None:
    """Resume a paused schedule."""
    from dataset_worker.deals.schedules import ACTIVE, set_schedule_state

    with database(ctx) as db, _deal_errors():
        view = set_schedule_state(db, schedule, ACTIVE)
    _print_schedule(view, as_json)


@schedule_app.command("delete")
def schedule_delete_command(
    ctx: typer.Context, schedule: ScheduleArg, as_json: JsonOpt = False
) -> None:
    """Delete a schedule; the deals it made stay."""
    from dataset_worker.deals.schedules import delete_schedule

    with database(ctx) as db, _deal_errors():
        view = delete_schedule(db, schedule)
    _print_schedule(view, as_json)
