"""Every table model, imported in one place so that Alembic and the tests see the whole schema."""

from app.audit.models import AuditEvent
from app.auth.models import ClientSecret, OAuthClient, RevokedToken, SigningKey, UsedClientAssertion
from app.catalog.models import Partner
from app.core.models import metadata

__all__ = [
    "AuditEvent",
    "ClientSecret",
    "OAuthClient",
    "Partner",
    "RevokedToken",
    "SigningKey",
    "UsedClientAssertion",
    "metadata",
]
