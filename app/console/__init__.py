"""The console: the signed-in workspace of the firm's people (alliance managers, finance, admins, auditors), served
as HTML by the same service under ``/console``. Pages call the domain services, never the HTTP API; each page is
authorised by the same role → scope table as the API (``app.auth.scopes.ROLE_SCOPES``)."""
