"""What ``Client`` and ``AsyncClient`` share: configuration, the API's operations and how to build each
request, and how to read each answer. Everything here is free of I/O; ``_calls`` sends, ``_operations`` calls."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from alliance_partner._auth import (
    TOKEN_PATH,
    AuthMethod,
    FreshPrivateKeyJWT,
    PrivateKeyInput,
    load_private_key,
)
from alliance_partner._exceptions import AuthenticationError
from alliance_partner._models import (
    BatchFormat,
    Page,
    Referral,
    from_json,
    to_json,
)
from alliance_partner._retry import RetryPolicy
from alliance_partner._uploads import (
    BatchSource,
    ClaimSource,
    batch_payload,
    claim_payload,
    json_body,
)
from alliance_partner._version import __version__

T = TypeVar("T")
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)


DEFAULT_BASE_URL = "http://localhost:8000"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_RENEWAL_MARGIN_S = 60
USER_AGENT = f"alliance-partner-python/{__version__}"
PAGE_SIZE = 100
RESULTS_PAGE_SIZE = 500
BATCH_MEDIA_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

#: Every API operation the SDK calls: method name → (HTTP method, path template). Both clients have a method of
#: each name (a dotted name is a method of a group: ``sandbox.simulate`` is ``client.sandbox.simulate``); a test
#: checks this map against the service's OpenAPI document.
OPERATIONS: dict[str, tuple[str, str]] = {
    "list_programs": ("GET", "/v1/programs"),
    "get_program": ("GET", "/v1/programs/{program_id}"),
    "create_referral": ("POST", "/v1/referrals"),
    "list_referrals": ("GET", "/v1/referrals"),
    "get_referral": ("GET", "/v1/referrals/{referral_id}"),
    "list_referral_events": ("GET", "/v1/referrals/{referral_id}/events"),
    "withdraw_referral": ("POST", "/v1/referrals/{referral_id}/withdraw"),
    "submit_batch": ("POST", "/v1/referral-batches"),
    "list_batches": ("GET", "/v1/referral-batches"),
    "get_batch": ("GET", "/v1/referral-batches/{batch_id}"),
    "list_batch_results": ("GET", "/v1/referral-batches/{batch_id}/results"),
    "create_webhook_endpoint": ("POST", "/v1/webhook-endpoints"),
    "list_webhook_endpoints": ("GET", "/v1/webhook-endpoints"),
    "get_webhook_endpoint": ("GET", "/v1/webhook-endpoints/{endpoint_id}"),
    "update_webhook_endpoint": ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"),
    "delete_webhook_endpoint": ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"),
    "rotate_webhook_secret": ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
    "send_test_webhook": ("POST", "/v1/webhook-endpoints/{endpoint_id}/test"),
    "list_webhook_deliveries": ("GET", "/v1/webhook-deliveries"),
    "get_webhook_delivery": ("GET", "/v1/webhook-deliveries/{delivery_id}"),
    "retry_webhook_delivery": ("POST", "/v1/webhook-deliveries/{delivery_id}/retry"),
    "list_statements": ("GET", "/v1/statements"),
    "get_statement": ("GET", "/v1/statements/{statement_id}"),
    "list_statement_lines": ("GET", "/v1/statements/{statement_id}/lines"),
    "upload_claim": ("POST", "/v1/statements/{statement_id}/claims"),
    "get_reconciliation": ("GET", "/v1/statements/{statement_id}/reconciliation"),
    "list_reconciliation_items": ("GET", "/v1/statements/{statement_id}/reconciliation"),
    "dispute_statement": ("POST", "/v1/statements/{statement_id}/disputes"),
    "get_funnel_report": ("GET", "/v1/reports/funnel"),
    "get_time_to_convert_report": ("GET", "/v1/reports/time-to-convert"),
    # The sandbox's, grouped under ``client.sandbox`` (sandbox and development deployments only).
    "sandbox.get_clock": ("GET", "/v1/sandbox/clock"),
    "sandbox.advance_clock": ("POST", "/v1/sandbox/clock/advance"),
    "sandbox.simulate": ("POST", "/v1/sandbox/referrals/{referral_id}/simulate"),
}

_NOT_SET: Any = object()


@dataclass
class RequestSpec:
    """One API call, ready to send (and to send again, identically, on a retry)."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    authenticated: bool = True

    @property
    def replayable(self) -> bool:
        """Safe to send again after it may have reached the service."""
        return self.method in ("GET", "HEAD", "PUT", "PATCH", "DELETE") or "Idempotency-Key" in self.headers

    def sending_options(self) -> dict[str, Any]:
        """Keyword arguments of Authlib's ``request`` that send this call (the token only if it needs one)."""
        params = self.params or None
        return {
            "params": params,
            "content": self.content,
            "headers": self.headers,
            "withhold_token": not self.authenticated,
        }


class TokenEndpointBusy(Exception):
    """The token endpoint answered 429 or 5xx: worth another try after ``response``'s ``Retry-After``."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"token endpoint answered {response.status_code}")
        self.response = response


def request_of(error: httpx.TransportError) -> httpx.Request | None:
    try:
        return error.request
    except RuntimeError:  # raised outside of a request
        return None


def env_options() -> dict[str, Any]:
    """Client options from the environment: ``ALLIANCE_BASE_URL``, ``ALLIANCE_CLIENT_ID``, and either
    ``ALLIANCE_CLIENT_SECRET`` or ``ALLIANCE_PRIVATE_KEY_FILE`` (PEM; ``ALLIANCE_PRIVATE_KEY_ID`` its ``kid``),
    with ``ALLIANCE_SCOPE`` optional."""
    options: dict[str, Any] = {
        "base_url": os.environ.get("ALLIANCE_BASE_URL") or DEFAULT_BASE_URL,
        "client_id": os.environ.get("ALLIANCE_CLIENT_ID"),
    }
    if secret := os.environ.get("ALLIANCE_CLIENT_SECRET"):
        options["client_secret"] = secret
    if key_file := os.environ.get("ALLIANCE_PRIVATE_KEY_FILE"):
        options["private_key"] = Path(key_file)
    if kid := os.environ.get("ALLIANCE_PRIVATE_KEY_ID"):
        options["private_key_id"] = kid
    if scope := os.environ.get("ALLIANCE_SCOPE"):
        options["scope"] = scope
    return options


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _path(name: str, **ids: str) -> tuple[str, str]:
    method, template = OPERATIONS[name]
    for key, value in ids.items():
        if not isinstance(value, str) or not value or value in (".", ".."):
            raise ValueError(f"{key} must be a non-empty id")
    return method, template.format(**{key: quote(value, safe="") for key, value in ids.items()})


def _query(**params: Any) -> dict[str, Any]:
    return {key: to_json(value) for key, value in params.items() if value is not None}


class BaseClient(Generic[TransportT]):
    """Configuration and request building shared by ``Client`` and ``AsyncClient`` (``TransportT``: the kind of
    httpx transport each takes)."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        private_key: PrivateKeyInput | None = None,
        private_key_id: str | None = None,
        auth_method: AuthMethod | None = None,
        scope: str | Iterable[str] | None = None,
        token_audience: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout | None = None,
        token_renewal_margin: int = DEFAULT_RENEWAL_MARGIN_S,
        headers: Mapping[str, str] | None = None,
        transport: TransportT | None = None,
    ) -> None:
        """Authenticates with ``client_secret`` (``client_secret_basic``, or ``client_secret_post`` through
        ``auth_method``) or ``private_key`` (``private_key_jwt``: PEM text, bytes or ``Path``, a private JWK, or
        a joserfc key; ``private_key_id`` its registered ``kid``, by default its RFC 7638 thumbprint). The token
        is fetched on first use, cached, and renewed ``token_renewal_margin`` seconds before it expires.
        ``scope`` narrows the token (by default every scope the client is allowed). ``token_audience`` is the
        ``aud`` of client assertions: by default the issuer from the server's metadata. Failed calls are retried
        as ``retry`` says (see ``RetryPolicy``). ``transport`` replaces httpx's (tests, proxies, mTLS).
        """
        if not client_id:
            raise ValueError("client_id is required")
        if (client_secret is None) == (private_key is None):
            raise ValueError("give exactly one of client_secret and private_key")
        if auth_method is None:
            auth_method = "private_key_jwt" if private_key is not None else "client_secret_basic"
        if (auth_method == "private_key_jwt") != (private_key is not None):
            raise ValueError(f"{auth_method} does not match the credential given")
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.client_id = client_id
        self.auth_method: AuthMethod = auth_method
        self.scope = scope if scope is None or isinstance(scope, str) else " ".join(scope)
        self.retry = retry or RetryPolicy()
        self.token_renewal_margin = token_renewal_margin
        self._client_secret = client_secret
        self._assertion: FreshPrivateKeyJWT | None = None
        if private_key is not None:
            self._assertion = FreshPrivateKeyJWT(load_private_key(private_key), kid=private_key_id)
            self._assertion.audience = token_audience
        self._timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self._token_stale = False
        self._http: Any = self._connect(transport)  # Authlib's OAuth2Client or AsyncOAuth2Client
        if self._assertion is not None:
            self._http.register_client_auth_method(self._assertion)
        self._http.register_compliance_hook("access_token_response", self._check_token_response)
        self._token_lock = self._new_lock()

    def _connect(self, transport: TransportT | None) -> Any:
        """The Authlib client that carries this client's calls."""
        raise NotImplementedError

    def _new_lock(self) -> Any:
        """A lock that one token request at a time holds."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} client_id={self.client_id!r} auth={self.auth_method}>"

    # --- OAuth ----------------------------------------------------------------------------------------------------

    def _oauth_options(self, transport: Any) -> dict[str, Any]:
        """Keyword arguments of Authlib's ``OAuth2Client`` / ``AsyncOAuth2Client``.

        ``token_endpoint`` and ``grant_type="client_credentials"`` are what lets Authlib renew a
        client-credentials token by itself (it has no refresh token); ``leeway`` renews it that many seconds
        before it expires, so that no call goes out with a token about to lapse.
        """
        return {
            "client_id": self.client_id,
            "client_secret": self._assertion.key if self._assertion else self._client_secret,
            "token_endpoint_auth_method": self.auth_method,
            "revocation_endpoint_auth_method": self.auth_method,
            "scope": self.scope,
            "token_endpoint": TOKEN_PATH,
            "grant_type": "client_credentials",
            "leeway": self.token_renewal_margin,
            "base_url": self.base_url,
            "timeout": self._timeout,
            "headers": self._headers,
            "transport": transport,
        }

    @staticmethod
    def _check_token_response(response: httpx.Response) -> httpx.Response:
        """Authlib's ``access_token_response`` hook: busy answers are retried, refusals raised with their code."""
        if response.status_code == 429 or response.status_code >= 500:
            raise TokenEndpointBusy(response)
        if response.status_code >= 400:
            raise BaseClient._check_refusal(response)
        return response

    @staticmethod
    def _check_refusal(response: httpx.Response) -> AuthenticationError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        return AuthenticationError(
            str(body.get("error") or f"http_{response.status_code}"),
            body.get("error_description"),
            status=response.status_code,
        )

    # --- building requests ----------------------------------------------------------------------------------------

    @staticmethod
    def _call(name: str, /, **ids: str) -> RequestSpec:
        method, path = _path(name, **ids)
        return RequestSpec(method, path)

    @staticmethod
    def _list(name: str, /, ids: Mapping[str, str], cursor: str | None, limit: int, **filters: Any) -> RequestSpec:
        method, path = _path(name, **ids)
        return RequestSpec(method, path, params=_query(limit=limit, cursor=cursor, **filters))

    @staticmethod
    def _create(name: str, body: Any, idempotency_key: str | None, /, **ids: str) -> RequestSpec:
        """A creation: one ``Idempotency-Key`` per call, sent again unchanged on every retry."""
        method, path = _path(name, **ids)
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key or new_idempotency_key()}
        return RequestSpec(method, path, content=json_body(body), headers=headers)

    @staticmethod
    def _action(name: str, body: Any = None, /, **ids: str) -> RequestSpec:
        method, path = _path(name, **ids)
        if body is None:
            return RequestSpec(method, path)
        return RequestSpec(method, path, content=json_body(body), headers={"Content-Type": "application/json"})

    @staticmethod
    def _withdrawal(reason: str, note: str | None) -> dict[str, Any]:
        return {"reason": reason, "note": note}

    @staticmethod
    def _endpoint_body(url: str, event_types: Iterable[str], description: str | None, enabled: bool) -> dict[str, Any]:
        return {"url": url, "event_types": list(event_types), "description": description, "enabled": enabled}

    @staticmethod
    def _endpoint_changes(
        url: str | None, event_types: Iterable[str] | None, description: Any, enabled: bool | None
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = url
        if event_types is not None:
            changes["event_types"] = list(event_types)
        if description is not _NOT_SET:
            changes["description"] = description  # None clears it
        if enabled is not None:
            changes["enabled"] = enabled
        if not changes:
            raise ValueError("nothing to change")
        return changes

    @staticmethod
    def _batch_spec(source: BatchSource, format: BatchFormat | None, idempotency_key: str | None) -> RequestSpec:
        method, path = OPERATIONS["submit_batch"]
        content, batch_format = batch_payload(source, format)
        headers = {
            "Content-Type": BATCH_MEDIA_TYPES[batch_format],
            "Idempotency-Key": idempotency_key or new_idempotency_key(),
        }
        return RequestSpec(method, path, content=content, headers=headers)

    @staticmethod
    def _claim_spec(
        statement_id: str, source: ClaimSource, amounts_include_vat: bool | None, idempotency_key: str | None
    ) -> RequestSpec:
        method, path = _path("upload_claim", statement_id=statement_id)
        content, media_type = claim_payload(source)
        headers = {"Content-Type": media_type, "Idempotency-Key": idempotency_key or new_idempotency_key()}
        params = _query(amounts_include_vat=amounts_include_vat)
        return RequestSpec(method, path, params=params, content=content, headers=headers)

    @staticmethod
    def _report(
        name: str,
        start: date | None,
        end: date | None,
        group_by: Iterable[str] | None,
        program_id: Iterable[str] | None,
        product: Iterable[str] | None,
        tier: Iterable[str] | None,
        kind: Iterable[str] | None,
    ) -> RequestSpec:
        method, path = _path(name)
        lists = {"group_by": group_by, "program_id": program_id, "product": product, "tier": tier, "kind": kind}
        params = _query(**{"from": start, "to": end}, **{key: list(value) for key, value in lists.items() if value})
        return RequestSpec(method, path, params={**params, "format": "json"})

    @staticmethod
    def _disputes(reasons: Mapping[str, str]) -> dict[str, Any]:
        if not reasons:
            raise ValueError("name at least one reconciliation item to dispute")
        return {"items": [{"item_id": item_id, "reason": reason} for item_id, reason in reasons.items()]}

    # --- reading answers ------------------------------------------------------------------------------------------

    @staticmethod
    def _one(cls: type[T], response: httpx.Response) -> T:
        return from_json(cls, response.json())

    @staticmethod
    def _many(cls: type[T], response: httpx.Response) -> list[T]:
        return [from_json(cls, item) for item in response.json()]

    @staticmethod
    def _page(cls: type[T], response: httpx.Response) -> Page[T]:
        body = response.json()
        return Page([from_json(cls, item) for item in body["data"]], body.get("next_cursor"))

    @staticmethod
    def _submitted(response: httpx.Response) -> Referral:
        referral = from_json(Referral, response.json())
        return Referral(**{**referral.__dict__, "is_new": response.status_code == 201})
