"""The ``alliance`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Annotated

import typer

from app import __version__
from app.core.config import get_settings
from app.core.database import redacted, resolve_database_url

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
    pass


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
def demo() -> None:
    """Load the demo alliance (idempotent: running it twice changes nothing)."""
    from app.demo import load_demo

    url = _database_url()
    _migrate(url)
    summary = asyncio.run(load_demo(url))
    typer.echo(summary)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Do not apply migrations first.")] = False,
    with_demo: Annotated[bool, typer.Option("--demo", help="Load the demo alliance before serving.")] = False,
) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    url = _database_url()
    if no_migrate:
        _check_reachable(url)
    else:
        _migrate(url)
    if with_demo:
        from app.demo import load_demo

        typer.echo(asyncio.run(load_demo(url)))
    typer.echo(f"serving on http://{host}:{port} with {workers} worker(s), database {redacted(url)}")
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting normally then lets the embedded database
    # (if any) stop with us instead of being orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_config=None,
    )


def main() -> None:
    try:
        cli()
    except DatabaseUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
