"""The ``alliance import-events`` command: the back office's daily file of conversion events (added to the
``alliance`` group of ``app.cli``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from app.core.config import get_settings


def add_import_commands(cli: typer.Typer, database_url: Callable[[], str], migrate: Callable[[str], None]) -> None:
    @cli.command("import-events")
    def import_events(
        path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The back office's CSV.")],
    ) -> None:
        """Import a daily file of conversion events (same rules as the API: idempotent, bad lines reported)."""
        from app.conversions.importer import import_file
        from app.core.database import Database as _Database
        from app.core.database import create_engine
        from app.privacy.service import blind_index

        settings = get_settings()
        url = database_url()
        migrate(url)
        total_lines = max(0, sum(1 for _ in path.open(encoding="utf-8-sig")) - 1)

        async def run() -> tuple[Counter[str], list[str]]:
            database = _Database(create_engine(url, settings))
            try:
                with typer.progressbar(length=total_lines, label="events") as bar:
                    return await import_file(database, blind_index(settings), path, bar.update)
            finally:
                await database.dispose()

        try:
            totals, rejections = asyncio.run(run())
        except (ValueError, UnicodeDecodeError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(
            ", ".join(f"{name}: {totals.get(name, 0)}" for name in ("applied", "deferred", "duplicate", "rejected"))
        )
        for rejection in rejections:
            typer.echo(f"  {rejection}", err=True)
