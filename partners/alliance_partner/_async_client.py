"""``AsyncClient``: the asynchronous client (asyncio or trio, through anyio like httpx)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import date
from types import TracebackType
from typing import Any

import anyio
import httpx

from alliance_partner._auth import AuthMethod, PrivateKeyInput
from alliance_partner._base import (
    _NOT_SET,
    PAGE_SIZE,
    RESULTS_PAGE_SIZE,
    BaseClient,
    BatchSource,
    ClaimSource,
    RequestSpec,
    batch_payload,
    env_options,
    request_of,
)
from alliance_partner._exceptions import BatchError, BatchTimeoutError, TransportError, error_for_response
from alliance_partner._models import (
    Batch,
    BatchFormat,
    BatchLine,
    BatchReport,
    DeliveryStatus,
    Dispute,
    FeeType,
    FunnelReport,
    LineOutcome,
    MatchClass,
    Page,
    Program,
    Reconciliation,
    ReconciliationItem,
    Referral,
    ReferralCreate,
    ReferralEvent,
    ReferralKind,
    ReferralStatus,
    ReportDimension,
    SecretRotated,
    Statement,
    StatementLine,
    StatementStatus,
    TimeToConvertReport,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WebhookEventType,
    WithdrawalReason,
)
from alliance_partner._oauth import AsyncOAuth2Client
from alliance_partner._pagination import AsyncPager
from alliance_partner._retry import RetryPolicy

BatchProgress = Callable[[Batch], object | Awaitable[object]]


class AsyncClient(BaseClient):
    """A partner's asynchronous client of the Alliance API; the same methods as ``Client``, awaited.

    ```python
    async with AsyncClient(base_url="https://alliance.example", client_id="cli_...", client_secret="acs_...") as api:
        referral = await api.create_referral(ReferralCreate(...))
        async for program in api.list_programs():
            ...
    ```

    Authenticates with ``client_secret`` (``client_secret_basic``, or ``client_secret_post`` through
    ``auth_method``) or ``private_key`` (``private_key_jwt``: PEM text, bytes or ``Path``, a private JWK, or a
    joserfc key; ``private_key_id`` its registered ``kid``, by default its RFC 7638 thumbprint). The token is
    fetched on first use, cached, and renewed ``token_renewal_margin`` seconds before it expires. ``scope``
    narrows the token (by default every scope the client is allowed). ``token_audience`` is the ``aud`` of
    client assertions: by default the issuer from the server's metadata. Failed calls are retried as
    ``retry`` says (see ``RetryPolicy``). ``transport`` replaces httpx's (tests, proxies, mTLS).

    One client is safe to share between tasks; reuse it rather than creating one per call.
    """

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
        token_renewal_margin: int = 60,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            client_id=client_id,
            client_secret=client_secret,
            private_key=private_key,
            private_key_id=private_key_id,
            auth_method=auth_method,
            scope=scope,
            token_audience=token_audience,
            retry=retry,
            timeout=timeout,
            token_renewal_margin=token_renewal_margin,
            headers=headers,
        )
        self._http = AsyncOAuth2Client(**self._oauth_options(transport))
        if self._assertion is not None:
            self._http.register_client_auth_method(self._assertion)
        self._http.register_compliance_hook("access_token_response", self._check_token_response)
        self._token_lock = anyio.Lock()

    @classmethod
    def from_env(cls, **options: Any) -> AsyncClient:
        """A client configured from ``ALLIANCE_*`` environment variables (see ``env_options``); ``options``
        override them."""
        return cls(**{**env_options(), **options})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- token ------------------------------------------------------------------------------------------------

    @property
    def token(self) -> dict[str, Any] | None:
        """The cached token (``access_token``, ``expires_at``, ``scope``...), None before the first call."""
        return self._http.token  # type: ignore[no-any-return]

    async def fetch_token(self) -> dict[str, Any]:
        """Fetch a new access token now (calls do it by themselves when needed)."""
        async with self._token_lock:
            return await self._fetch_token()

    async def _fetch_token(self) -> dict[str, Any]:
        if self._audience_missing:
            self._set_audience(await self._send(self._metadata_spec()))
        retry = 0
        while True:
            try:
                token: dict[str, Any] = await self._http.fetch_token()
                self._token_stale = False
                return token
            except Exception as error:
                retry += 1
                delay = self._token_retry_delay(error, retry)
                if delay is None:
                    failure = self._token_failure(error)
                    if failure is error:
                        raise
                    raise failure from error
                await self._sleep(delay)

    async def _ensure_token(self) -> None:
        if self._token_needed(self._http.token):
            async with self._token_lock:
                if self._token_needed(self._http.token):  # another thread may have renewed it meanwhile
                    await self._fetch_token()

    async def revoke_token(self) -> None:
        """Revoke the cached token (RFC 7009) and forget it; the next call fetches a new one."""
        token = self._http.token
        if token is None:
            return
        async with self._token_lock:
            response = await self._http.revoke_token(**self._revoke_options(token))
            self._token_stale = True
        if not response.is_success:
            raise error_for_response(response)

    # --- sending ----------------------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def _send(self, spec: RequestSpec) -> httpx.Response:
        retry = 0
        renewed = False
        while True:
            if spec.authenticated:
                await self._ensure_token()
            try:
                response = await self._http.request(
                    spec.method,
                    spec.path,
                    params=spec.params or None,
                    content=spec.content,
                    headers=spec.headers,
                    withhold_token=not spec.authenticated,
                )
            except httpx.TransportError as error:
                retry += 1
                delay = self._error_delay(spec, error, retry)
                if delay is None:
                    raise TransportError(
                        f"{spec.method} {spec.path} failed: {error}", request=request_of(error)
                    ) from error
                await self._sleep(delay)
                continue
            if response.is_success:
                return response  # type: ignore[no-any-return]
            if spec.authenticated and not renewed and self._token_rejected(response):
                renewed = True
                self._token_stale = True
                continue
            retry += 1
            delay = self._response_delay(spec, response, retry)
            if delay is None:
                raise error_for_response(response)
            await self._sleep(delay)

    def _pager(
        self, cls: type[Any], name: str, ids: Mapping[str, str], cursor: str | None, limit: int, **filters: Any
    ) -> AsyncPager[Any]:
        async def fetch(after: str | None) -> Page[Any]:
            return self._page(cls, await self._send(self._list(name, ids, after, limit, **filters)))

        return AsyncPager(fetch, cursor)

    # --- programs ---------------------------------------------------------------------------------------------

    def list_programs(self, *, cursor: str | None = None, limit: int = PAGE_SIZE) -> AsyncPager[Program]:
        """Your programs, with their products and the fee schedule in force."""
        return self._pager(Program, "list_programs", {}, cursor, limit)

    async def get_program(self, program_id: str) -> Program:
        return self._one(Program, await self._send(self._call("get_program", program_id=program_id)))

    # --- referrals --------------------------------------------------------------------------------------------

    async def create_referral(
        self, referral: ReferralCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Referral:
        """Submit one referral; the answer's ``status`` is the attribution outcome (``eligible``,
        ``existing_client``, ``duplicate``) and ``is_new`` tells a new referral from your existing one.

        An ``Idempotency-Key`` is generated for the call (or pass your own, e.g. derived from your record, to
        make a re-run of your job safe too) and sent again on every retry.
        """
        return self._submitted(await self._send(self._create("create_referral", referral, idempotency_key)))

    def list_referrals(
        self,
        *,
        status: ReferralStatus | None = None,
        program_id: str | None = None,
        kind: ReferralKind | None = None,
        external_ref: str | None = None,
        created_from: Any = None,
        created_to: Any = None,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> AsyncPager[Referral]:
        """Your referrals, newest first; ``created_from``/``created_to`` are aware datetimes."""
        filters = {
            "status": status,
            "program_id": program_id,
            "kind": kind,
            "external_ref": external_ref,
            "created_from": created_from,
            "created_to": created_to,
        }
        return self._pager(Referral, "list_referrals", {}, cursor, limit, **filters)

    async def get_referral(self, referral_id: str) -> Referral:
        return self._one(Referral, await self._send(self._call("get_referral", referral_id=referral_id)))

    async def list_referral_events(self, referral_id: str) -> list[ReferralEvent]:
        """A referral's timeline, oldest first."""
        response = await self._send(self._call("list_referral_events", referral_id=referral_id))
        return self._many(ReferralEvent, response)

    async def withdraw_referral(
        self, referral_id: str, *, reason: WithdrawalReason, note: str | None = None
    ) -> Referral:
        """Withdraw a referral (e.g. the client revoked consent): its personal data is erased at once."""
        spec = self._action("withdraw_referral", self._withdrawal(reason, note), referral_id=referral_id)
        return self._one(Referral, await self._send(spec))

    # --- batches ----------------------------------------------------------------------------------------------

    async def submit_batch(
        self, source: BatchSource, *, format: BatchFormat | None = None, idempotency_key: str | None = None
    ) -> Batch:
        """Upload a batch (see ``upload_batch`` for ``source``) and return it at once, maybe still pending."""
        content, batch_format = batch_payload(source, format)
        return self._one(Batch, await self._send(self._batch_spec(content, batch_format, idempotency_key)))

    async def wait_for_batch(
        self,
        batch: Batch | str,
        *,
        progress: BatchProgress | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = None,  # noqa: ASYNC109 (a wait budget; the error carries the batch to resume)
    ) -> Batch:
        """Poll a batch until it is completed; ``progress`` is called with the batch after each poll.

        Raises ``BatchError`` if it failed, ``BatchTimeoutError`` if ``timeout`` seconds passed first.
        """
        current = batch if isinstance(batch, Batch) else await self.get_batch(batch)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if progress is not None:
                outcome = progress(current)
                if inspect.isawaitable(outcome):
                    await outcome
            if current.status == "completed":
                return current
            if current.status == "failed":
                raise BatchError(f"batch {current.id} failed on the server", current)
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise BatchTimeoutError(f"batch {current.id} is still {current.status}", current)
            await self._sleep(poll_interval)
            current = await self.get_batch(current.id)

    async def upload_batch(
        self,
        source: BatchSource,
        *,
        format: BatchFormat | None = None,
        idempotency_key: str | None = None,
        progress: BatchProgress | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> BatchReport:
        """Upload a batch, wait for it, and return every line's result.

        ``source`` is a file (``Path``), its content (``str``/``bytes``, CSV or JSON Lines), or rows
        (``ReferralCreate`` objects or dicts, sent as JSON Lines: line ``n`` of the results is ``rows[n-1]``).
        Up to 500 lines are processed during the upload; larger batches in the background, which
        ``progress`` follows.
        """
        batch = await self.submit_batch(source, format=format, idempotency_key=idempotency_key)
        done = await self.wait_for_batch(batch, progress=progress, poll_interval=poll_interval, timeout=timeout)
        return BatchReport(done, await self.list_batch_results(done.id).to_list())

    def list_batches(self, *, cursor: str | None = None, limit: int = PAGE_SIZE) -> AsyncPager[Batch]:
        return self._pager(Batch, "list_batches", {}, cursor, limit)

    async def get_batch(self, batch_id: str) -> Batch:
        return self._one(Batch, await self._send(self._call("get_batch", batch_id=batch_id)))

    def list_batch_results(
        self,
        batch_id: str,
        *,
        outcome: LineOutcome | None = None,
        cursor: str | None = None,
        limit: int = RESULTS_PAGE_SIZE,
    ) -> AsyncPager[BatchLine]:
        """A batch's per-line results in line order (``outcome="error"`` for the lines to fix)."""
        return self._pager(BatchLine, "list_batch_results", {"batch_id": batch_id}, cursor, limit, outcome=outcome)

    # --- webhooks ---------------------------------------------------------------------------------------------

    async def create_webhook_endpoint(
        self,
        url: str,
        event_types: Iterable[WebhookEventType],
        *,
        description: str | None = None,
        enabled: bool = True,
        idempotency_key: str | None = None,
    ) -> WebhookEndpointCreated:
        """Register an endpoint; keep the returned ``secret`` (shown once) to verify deliveries."""
        body = self._endpoint_body(url, event_types, description, enabled)
        response = await self._send(self._create("create_webhook_endpoint", body, idempotency_key))
        return self._one(WebhookEndpointCreated, response)

    def list_webhook_endpoints(
        self, *, cursor: str | None = None, limit: int = PAGE_SIZE
    ) -> AsyncPager[WebhookEndpoint]:
        return self._pager(WebhookEndpoint, "list_webhook_endpoints", {}, cursor, limit)

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        return self._one(WebhookEndpoint, await self._send(self._call("get_webhook_endpoint", endpoint_id=endpoint_id)))

    async def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Iterable[WebhookEventType] | None = None,
        description: Any = _NOT_SET,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint; re-enabling a disabled one resets its failure count."""
        changes = self._endpoint_changes(url, event_types, description, enabled)
        spec = self._action("update_webhook_endpoint", changes, endpoint_id=endpoint_id)
        return self._one(WebhookEndpoint, await self._send(spec))

    async def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Remove an endpoint: it stops receiving (pending deliveries fail) but stays readable, disabled, with
        its delivery log."""
        await self._send(self._call("delete_webhook_endpoint", endpoint_id=endpoint_id))

    async def rotate_webhook_secret(self, endpoint_id: str) -> SecretRotated:
        """A new signing secret; the old one keeps signing too until ``previous_secret_expires_at``."""
        spec = self._action("rotate_webhook_secret", endpoint_id=endpoint_id)
        return self._one(SecretRotated, await self._send(spec))

    async def send_test_webhook(self, endpoint_id: str) -> WebhookDelivery:
        """Queue a ``webhook.test`` delivery to the endpoint."""
        return self._one(WebhookDelivery, await self._send(self._action("send_test_webhook", endpoint_id=endpoint_id)))

    def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        status: DeliveryStatus | None = None,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> AsyncPager[WebhookDelivery]:
        return self._pager(
            WebhookDelivery, "list_webhook_deliveries", {}, cursor, limit, endpoint_id=endpoint_id, status=status
        )

    async def get_webhook_delivery(self, delivery_id: str) -> WebhookDeliveryDetail:
        """A delivery with its payload and every attempt."""
        response = await self._send(self._call("get_webhook_delivery", delivery_id=delivery_id))
        return self._one(WebhookDeliveryDetail, response)

    async def retry_webhook_delivery(self, delivery_id: str) -> WebhookDelivery:
        """Send a delivery again (same ``webhook-id``)."""
        spec = self._action("retry_webhook_delivery", delivery_id=delivery_id)
        return self._one(WebhookDelivery, await self._send(spec))

    # --- statements and reconciliation ------------------------------------------------------------------------

    def list_statements(
        self,
        *,
        period: str | None = None,
        status: StatementStatus | None = None,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> AsyncPager[Statement]:
        """Your monthly statements, newest first (``period`` is ``YYYY-MM``)."""
        return self._pager(Statement, "list_statements", {}, cursor, limit, period=period, status=status)

    async def get_statement(self, statement_id: str) -> Statement:
        return self._one(Statement, await self._send(self._call("get_statement", statement_id=statement_id)))

    def list_statement_lines(
        self,
        statement_id: str,
        *,
        rule: FeeType | None = None,
        cursor: str | None = None,
        limit: int = RESULTS_PAGE_SIZE,
    ) -> AsyncPager[StatementLine]:
        """The fee lines of a statement (``rule`` keeps one fee type)."""
        ids = {"statement_id": statement_id}
        return self._pager(StatementLine, "list_statement_lines", ids, cursor, limit, rule=rule)

    async def upload_claim(
        self,
        statement_id: str,
        claim: ClaimSource,
        *,
        amounts_include_vat: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Reconciliation:
        """Upload your claim for an issued statement and get the matching at once.

        ``claim`` is ``ClaimLine`` objects or dicts (sent as JSON), or a CSV (``external_ref``, ``fee_type``,
        ``amount_fen``) or JSON file (``Path``) or content. A new upload replaces your previous claim.
        ``amounts_include_vat`` defaults to your VAT setting.
        """
        spec = self._claim_spec(statement_id, claim, amounts_include_vat, idempotency_key)
        return self._one(Reconciliation, await self._send(spec))

    async def get_reconciliation(
        self,
        statement_id: str,
        *,
        match_class: MatchClass | None = None,
        open: bool | None = None,
        limit: int = PAGE_SIZE,
    ) -> Reconciliation:
        """The matching of your current claim: totals per class and the first page of items."""
        spec = self._list(
            "get_reconciliation", {"statement_id": statement_id}, None, limit, match_class=match_class, open=open
        )
        return self._one(Reconciliation, await self._send(spec))

    def list_reconciliation_items(
        self,
        statement_id: str,
        *,
        match_class: MatchClass | None = None,
        open: bool | None = None,
        cursor: str | None = None,
        limit: int = RESULTS_PAGE_SIZE,
    ) -> AsyncPager[ReconciliationItem]:
        """Every item of the matching (``open=True``: discrepancies finance has not resolved yet)."""
        ids = {"statement_id": statement_id}
        return self._pager(
            ReconciliationItem, "list_reconciliation_items", ids, cursor, limit, match_class=match_class, open=open
        )

    async def dispute_statement(self, statement_id: str, reasons: Mapping[str, str]) -> Dispute:
        """Dispute reconciliation items, ``{item_id: reason}``; the statement is ``disputed`` until finance has
        resolved every open item."""
        spec = self._action("dispute_statement", self._disputes(reasons), statement_id=statement_id)
        return self._one(Dispute, await self._send(spec))

    # --- reports ----------------------------------------------------------------------------------------------

    async def get_funnel_report(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        group_by: Iterable[ReportDimension] | None = None,
        program_id: Iterable[str] | None = None,
        product: Iterable[str] | None = None,
        tier: Iterable[str] | None = None,
        kind: Iterable[ReferralKind] | None = None,
    ) -> FunnelReport:
        """Your funnel: referrals received from ``start`` to ``end`` (days in Asia/Shanghai, inclusive; by default
        the last twelve months), the stages they reached and the rates, grouped by ``group_by`` (``program``,
        ``product``, ``tier``, ``kind``, ``month``)."""
        spec = self._report("get_funnel_report", start, end, group_by, program_id, product, tier, kind)
        return self._one(FunnelReport, await self._send(spec))

    async def get_time_to_convert_report(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        group_by: Iterable[ReportDimension] | None = None,
        program_id: Iterable[str] | None = None,
        product: Iterable[str] | None = None,
        tier: Iterable[str] | None = None,
        kind: Iterable[ReferralKind] | None = None,
    ) -> TimeToConvertReport:
        """Days from referral to account opening, funding and conversion (median and 90th percentile)."""
        spec = self._report("get_time_to_convert_report", start, end, group_by, program_id, product, tier, kind)
        return self._one(TimeToConvertReport, await self._send(spec))
