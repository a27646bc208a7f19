"""The ``alliance`` command."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from app import __version__
from app.conversions.commands import add_import_commands
from app.core.config import get_settings
from app.core.database import redacted, resolve_database_url
from app.core.problems import Problem
from app.people.commands import add_people_commands

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.privacy.service import EncryptedColumn

T = TypeVar("T")

cli = typer.Typer(
    name="alliance",
    help="Alliance: the partner-alliance referral platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class DatabaseUnreachable(Exception):
    pass


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alliance {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from app.core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)


def _database_url() -> str:
    url = resolve_database_url(get_settings())
    # Worker processes and sub-commands reuse the same server instead of starting their own.
    os.environ["DATABASE_URL"] = url
    return url


def _check_reachable(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def probe() -> None:
        engine = create_async_engine(url, connect_args={"timeout": get_settings().db_connect_timeout_s})
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:
        raise DatabaseUnreachable(f"cannot reach the database at {redacted(url)}: {type(exc).__name__}: {exc}") from exc


def _migrate(url: str) -> None:
    from app.core.migrations import upgrade_to_head

    _check_reachable(url)
    upgrade_to_head(url)


@cli.command()
def migrate() -> None:
    """Apply every pending migration (upgrade to head)."""
    url = _database_url()
    _migrate(url)
    typer.echo(f"database at head: {redacted(url)}")


@cli.command("db-url")
def db_url(
    show_password: Annotated[bool, typer.Option(help="Print the password too.")] = False,
) -> None:
    """Print the database URL in use (starting the embedded database if none is configured)."""
    url = _database_url()
    typer.echo(url if show_password else redacted(url))


@cli.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the credentials as JSON.")] = False,
    reset_secrets: Annotated[
        bool, typer.Option("--reset-secrets", help="Give rotated demo clients their demo secret back.")
    ] = False,
) -> None:
    """Load the demo alliance (idempotent) and print its credentials."""
    url = _database_url()
    _migrate(url)
    _print_demo(_load_demo(url, reset_secrets=reset_secrets), as_json)


Demo = tuple[list[dict[str, str | None]], list[dict[str, str | None]]]


def _load_demo(url: str, *, reset_secrets: bool = False) -> Demo:
    from app.demo import DemoRefused, load_demo

    staff_users: list[dict[str, str | None]] = []
    try:
        clients = asyncio.run(load_demo(url, get_settings(), reset_secrets=reset_secrets, staff_users=staff_users))
    except DemoRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    return clients, staff_users


def _print_demo(demo: Demo, as_json: bool) -> None:
    credentials, staff_users = demo
    if as_json:
        typer.echo(json.dumps({"clients": credentials, "staff_users": staff_users}, indent=2, ensure_ascii=False))
        return
    typer.echo("Demo alliance loaded. Credentials (development only):")
    for item in credentials:
        who = item["partner_id"] or item["role"] or item["kind"]
        secret = item["client_secret"] or "(shown when created; `alliance demo --reset-secrets` for new ones)"
        typer.echo(f"  {who:<22} {item['client_id']:<26} {secret}")
    typer.echo("Console people (/console/sign-in: username, password, and the TOTP code of the secret):")
    for person in staff_users:
        shown = (
            f"password {person['password']}  totp secret {person['totp_secret']}"
            if person["password"]
            else "(shown when created; `alliance demo --reset-secrets` for new ones)"
        )
        typer.echo(f"  {person['role']:<17} {person['username']:<21} {shown}")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes.")] = 1,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Do not apply migrations first.")] = False,
    with_demo: Annotated[bool, typer.Option("--demo", help="Load the demo alliance before serving.")] = False,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not start the background worker (run `alliance worker` apart).")
    ] = False,
) -> None:
    """Serve the API with uvicorn, and the background worker (batches, webhooks, periodic jobs) beside it."""
    import uvicorn

    url = _database_url()
    if no_migrate:
        _check_reachable(url)
    else:
        _migrate(url)
    if with_demo:
        _print_demo(_load_demo(url), as_json=False)
    typer.echo(f"serving on http://{host}:{port} with {workers} worker(s), database {redacted(url)}")
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting normally then lets the embedded database
    # (if any) stop with us instead of being orphaned, and the worker be stopped first.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    metrics_dir = _multiprocess_metrics(workers)
    background = None if no_worker else _start_worker()
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            log_config=None,
        )
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: nothing left to report
        pass
    finally:
        if background is not None:
            _stop_worker(background)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _multiprocess_metrics(workers: int) -> str | None:
    """With several API processes, a fresh directory where each writes its metrics (``/metrics`` sums them);
    removed when serving ends. None with one process, or when the operator named a directory already."""
    if workers < 2 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    directory = tempfile.mkdtemp(prefix="alliance-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


WORKER_STOP_TIMEOUT_S = 30.0


def _start_worker() -> subprocess.Popen[bytes]:
    """``alliance worker`` as a child process of the same process group (a terminal's Ctrl-C reaches both), told
    to stop should this process die without stopping it."""
    command = [sys.executable, "-c", "from app.cli import main; main()", "worker", "--parent-pid", str(os.getpid())]
    child = subprocess.Popen(command, env=os.environ.copy())
    typer.echo(f"background worker started (pid {child.pid}); `--no-worker` to run it apart")
    return child


def _stop_worker(child: subprocess.Popen[bytes]) -> None:
    """Stop the worker gracefully (it finishes the chunk in flight), forcibly past the timeout."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


@cli.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run one pass (open batches, periodic jobs) and exit.")] = False,
    poll_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls for new batches.")] = 1.0,
    jobs_interval: Annotated[float, typer.Option(min=1.0, help="Seconds between runs of the periodic jobs.")] = 60.0,
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Stop when this process (`alliance serve`) is gone.")
    ] = None,
) -> None:
    """Process referral batches, deliver webhooks and run the periodic jobs (expiry, retention, fee holds)."""
    from app.worker.runner import run_worker

    url = _database_url()
    _check_reachable(url)
    typer.echo(f"worker on database {redacted(url)}" + (" (one pass)" if once else ""))
    report = asyncio.run(
        run_worker(
            get_settings(),
            url,
            once=once,
            poll_interval_s=poll_interval,
            jobs_interval_s=jobs_interval,
            parent_pid=parent_pid,
        )
    )
    if report is not None:
        jobs = ", ".join(f"{name} {rows}" for name, rows in report.jobs.items())
        typer.echo(
            f"batches processed: {report.batches}, webhooks sent: {report.deliveries}, "
            f"failed runs: {report.failures}; jobs: {jobs}"
        )
        if report.failures:
            raise typer.Exit(1)


def _in_transaction(url: str, work: Callable[[AsyncSession], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run ``work`` in one transaction against the (migrated) database."""
    from app.core.database import Database as _Database
    from app.core.database import create_engine

    async def run() -> T:
        database = _Database(create_engine(url, get_settings()))
        try:
            async with database.sessionmaker() as session, session.begin():
                return await work(session)
        finally:
            await database.dispose()

    if migrate:
        _migrate(url)
    return asyncio.run(run())


def _print_credentials(client_id: str, secret: str | None, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
        return
    typer.echo(f"client_id:     {client_id}")
    if secret:
        typer.echo(f"client_secret: {secret}")
        typer.echo("The secret is shown once; store it now.")


staff_cli = typer.Typer(help="Staff: OAuth clients with a role, and people of the console.", no_args_is_help=True)
clients_cli = typer.Typer(help="OAuth clients of partners and the back office.", no_args_is_help=True)
keys_cli = typer.Typer(help="Key management.", no_args_is_help=True)
finance_cli = typer.Typer(help="Finance: statements.", no_args_is_help=True)
cli.add_typer(staff_cli, name="staff")
add_people_commands(staff_cli, lambda work: _in_transaction(_database_url(), work))
add_import_commands(cli, _database_url, _migrate)
cli.add_typer(clients_cli, name="clients")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(finance_cli, name="finance")


@staff_cli.command("create")
def staff_create(
    role: Annotated[str, typer.Option(help="alliance_manager | finance | admin | auditor")],
    name: Annotated[str, typer.Option(help="Who this account is for.")] = "staff",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a staff account and print its credentials once."""
    from app.audit.service import Actor
    from app.auth.scopes import PrincipalKind, StaffRole
    from app.auth.service import create_client

    try:
        staff_role = StaffRole(role)
    except ValueError:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from None
    created = _in_transaction(
        _database_url(),
        lambda session: create_client(session, Actor.system(), name=name, kind=PrincipalKind.staff, role=staff_role),
    )
    _print_credentials(created.client.id, created.secret, as_json)


@clients_cli.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="A name for the integration.")],
    partner: Annotated[str | None, typer.Option(help="Partner id, for a partner client.")] = None,
    back_office: Annotated[bool, typer.Option("--back-office", help="A back-office (conversion feed) client.")] = False,
    auth_method: Annotated[str, typer.Option(help="client_secret_basic | client_secret_post | private_key_jwt")] = (
        "client_secret_basic"
    ),
    jwks_file: Annotated[Path | None, typer.Option(help="Public JWKS file, for private_key_jwt.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a partner or back-office client and print its credentials once."""
    from app.audit.service import Actor
    from app.auth.models import AuthMethod
    from app.auth.scopes import PrincipalKind
    from app.auth.service import create_client

    if bool(partner) == back_office:
        raise typer.BadParameter("give exactly one of --partner or --back-office")
    jwks = json.loads(jwks_file.read_text()) if jwks_file else None
    created = _in_transaction(
        _database_url(),
        lambda session: create_client(
            session,
            Actor.system(),
            name=name,
            kind=PrincipalKind.back_office if back_office else PrincipalKind.partner,
            partner_id=partner,
            auth_method=AuthMethod(auth_method),
            jwks=jwks,
        ),
    )
    _print_credentials(created.client.id, created.secret, as_json)


@clients_cli.command("rotate")
def clients_rotate(
    client_id: str,
    grace_hours: Annotated[float, typer.Option(help="How long the old secret keeps working.")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Issue a new secret; the old one works until the grace period ends."""
    from app.audit.service import Actor
    from app.auth.service import rotate_client_secret

    _, secret, until = _in_transaction(
        _database_url(),
        lambda session: rotate_client_secret(session, Actor.system(), client_id, grace_s=int(grace_hours * 3600)),
    )
    _print_credentials(client_id, secret, as_json)
    if not as_json:
        typer.echo(f"previous secret expires at {until.isoformat()}")


@clients_cli.command("revoke")
def clients_revoke(client_id: str) -> None:
    """Revoke a client at once: its tokens stop working."""
    from app.audit.service import Actor
    from app.auth.service import revoke_client

    _in_transaction(_database_url(), lambda session: revoke_client(session, Actor.system(), client_id))
    typer.echo(f"revoked {client_id}")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Rotate the access-token signing key; tokens signed by the old key stay valid until they expire."""
    from app.audit import service as audit
    from app.audit.service import Actor
    from app.auth.keys import rotate_signing_key

    async def rotate(session: AsyncSession) -> tuple[str | None, str]:
        retired, active = await rotate_signing_key(session, get_settings())
        await audit.record(
            session, Actor.system(), "signing_key.rotated", object_type="signing_key", object_id=active, retired=retired
        )
        return retired, active

    retired, active = _in_transaction(_database_url(), rotate)
    typer.echo(f"active signing key: {active} (retired: {retired or 'none'})")


@finance_cli.command("close-period")
def finance_close_period(
    period: Annotated[str, typer.Argument(help="The month to close, YYYY-MM (business timezone).")],
) -> None:
    """Release held lines due by the period end and build one draft statement per partner (safe to repeat)."""
    from app.audit.service import Actor
    from app.core import clock
    from app.core.config import get_settings
    from app.sandbox.service import close_on_real_time

    closed, left_out = _in_transaction(
        _database_url(),
        lambda session: close_on_real_time(session, Actor.system(), get_settings(), period, clock.now()),
    )
    typer.echo(
        f"{closed.period.name}: {closed.released_lines} held line(s) released, {closed.statemented_lines} line(s) "
        f"put on statements, {closed.created_statements} statement(s) created, {len(closed.statements)} in the period"
    )
    for statement in closed.statements:
        typer.echo(
            f"  {statement.id}  {statement.partner_id:<26} {statement.status.value:<9} lines {statement.line_count:>7}"
            f"  net {statement.net_fen:>14}  vat {statement.vat_fen:>12}  gross {statement.gross_fen:>14} fen"
        )
    held = closed.under_review  # due, but their referrals are under a risk review: in the first close after it
    typer.echo(f"  under review, left out: {held.lines} line(s), {held.amount_fen} fen, {held.partners} partner(s)")
    for partner in left_out:
        typer.echo(f"  left out: {partner.partner_id} (sandbox test clock at {partner.clock_now.isoformat()})")


@keys_cli.command("rotate-data")
def keys_rotate_data(
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Rows re-encrypted per transaction.")] = 1000,
) -> None:
    """Make a new data key active, then re-encrypt every stored personal datum under it, in batches."""
    from app.audit import service as audit
    from app.audit.service import Actor
    from app.privacy.service import load_cipher, reencrypt_batch, rotate_data_key
    from app.referrals.service import ENCRYPTED_COLUMNS

    settings = get_settings()
    url = _database_url()

    async def rotate(session: AsyncSession) -> int:
        key_id = await rotate_data_key(session, settings)
        await audit.record(session, Actor.system(), "data_key.rotated", object_type="data_key", object_id=str(key_id))
        return key_id

    key_id = _in_transaction(url, rotate)
    typer.echo(f"active data key: {key_id}")
    for target in ENCRYPTED_COLUMNS:

        async def one_batch(session: AsyncSession, target: EncryptedColumn = target) -> int:
            return await reencrypt_batch(session, await load_cipher(session, settings), target, batch_size)

        total = 0
        while done := _in_transaction(url, one_batch, migrate=False):
            total += done
        typer.echo(f"{target.table}.{target.column}: {total} re-encrypted")


def main() -> None:
    try:
        cli()
    except DatabaseUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except Problem as exc:
        typer.echo(f"error: {exc.detail or exc.title}", err=True)
        raise SystemExit(1) from None
