"""Every table model, imported in one place so that Alembic and the tests see the whole schema."""

from app.core.models import metadata

__all__ = ["metadata"]
