"""Every API operation, written once for both clients (see ``_plans``): ``Client`` and ``AsyncClient`` inherit
them all and only carry out their I/O."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from alliance_partner._base import _NOT_SET, PAGE_SIZE, RESULTS_PAGE_SIZE, TransportT
from alliance_partner._calls import CallingClient
from alliance_partner._exceptions import BatchError, BatchTimeoutError
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
from alliance_partner._plans import BatchProgress, Listing, Plan, Progress, Sleep, listing, namespace, operation
from alliance_partner._sandbox import AsyncSandbox, Sandbox
from alliance_partner._uploads import BatchSource, ClaimSource


class Operations(CallingClient[TransportT]):
    """The partner API's operations; a list returns a pager at once, every other call its answer."""

    #: The test clock and the simulated back office (sandbox and development deployments only).
    sandbox = namespace(Sandbox, AsyncSandbox)

    # --- programs ---------------------------------------------------------------------------------------------

    @listing
    def list_programs(self, *, cursor: str | None = None, limit: int = PAGE_SIZE) -> Listing[Program]:
        """Your programs, with their products and the fee schedule in force."""
        return self._listing(Program, "list_programs", {}, cursor, limit)

    @operation
    def get_program(self, program_id: str) -> Plan[Program]:
        return (yield from self._read(Program, self._call("get_program", program_id=program_id)))

    # --- referrals --------------------------------------------------------------------------------------------

    @operation
    def create_referral(
        self, referral: ReferralCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Plan[Referral]:
        """Submit one referral; the answer's ``status`` is the attribution outcome (``eligible``,
        ``existing_client``, ``duplicate``) and ``is_new`` tells a new referral from your existing one.

        An ``Idempotency-Key`` is generated for the call (or pass your own, e.g. derived from your record, to
        make a re-run of your job safe too) and sent again on every retry.
        """
        response = yield from self._exchange(self._create("create_referral", referral, idempotency_key))
        return self._submitted(response)

    @listing
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
    ) -> Listing[Referral]:
        """Your referrals, newest first; ``created_from``/``created_to`` are aware datetimes."""
        filters = {
            "status": status,
            "program_id": program_id,
            "kind": kind,
            "external_ref": external_ref,
            "created_from": created_from,
            "created_to": created_to,
        }
        return self._listing(Referral, "list_referrals", {}, cursor, limit, **filters)

    @operation
    def get_referral(self, referral_id: str) -> Plan[Referral]:
        return (yield from self._read(Referral, self._call("get_referral", referral_id=referral_id)))

    @operation
    def list_referral_events(self, referral_id: str) -> Plan[list[ReferralEvent]]:
        """A referral's timeline, oldest first."""
        response = yield from self._exchange(self._call("list_referral_events", referral_id=referral_id))
        return self._many(ReferralEvent, response)

    @operation
    def withdraw_referral(
        self, referral_id: str, *, reason: WithdrawalReason, note: str | None = None
    ) -> Plan[Referral]:
        """Withdraw a referral (e.g. the client revoked consent): its personal data is erased at once."""
        spec = self._action("withdraw_referral", self._withdrawal(reason, note), referral_id=referral_id)
        return (yield from self._read(Referral, spec))

    # --- batches ----------------------------------------------------------------------------------------------

    @operation
    def submit_batch(
        self, source: BatchSource, *, format: BatchFormat | None = None, idempotency_key: str | None = None
    ) -> Plan[Batch]:
        """Upload a batch (see ``upload_batch`` for ``source``) and return it at once, maybe still pending."""
        return (yield from self._read(Batch, self._batch_spec(source, format, idempotency_key)))

    @operation
    def wait_for_batch(
        self,
        batch: Batch | str,
        *,
        progress: BatchProgress | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = None,
    ) -> Plan[Batch]:
        """Poll a batch until it is completed; ``progress`` is called with the batch after each poll.

        Raises ``BatchError`` if it failed, ``BatchTimeoutError`` if ``timeout`` seconds passed first.
        """
        return (yield from self._wait_for_batch(batch, progress, poll_interval, timeout))

    def _wait_for_batch(
        self, batch: Batch | str, progress: BatchProgress | None, poll_interval: float, timeout: float | None
    ) -> Plan[Batch]:
        current = batch if isinstance(batch, Batch) else (yield from self._read_batch(batch))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if progress is not None:
                yield Progress(progress, current)
            if current.status == "completed":
                return current
            if current.status == "failed":
                raise BatchError(f"batch {current.id} failed on the server", current)
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise BatchTimeoutError(f"batch {current.id} is still {current.status}", current)
            yield Sleep(poll_interval)
            current = yield from self._read_batch(current.id)

    @operation
    def upload_batch(
        self,
        source: BatchSource,
        *,
        format: BatchFormat | None = None,
        idempotency_key: str | None = None,
        progress: BatchProgress | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = None,
    ) -> Plan[BatchReport]:
        """Upload a batch, wait for it, and return every line's result.

        ``source`` is a file (``Path``), its content (``str``/``bytes``, CSV or JSON Lines), or rows
        (``ReferralCreate`` objects or dicts, sent as JSON Lines: line ``n`` of the results is ``rows[n-1]``).
        Up to 500 lines are processed during the upload; larger batches in the background, which
        ``progress`` follows.
        """
        batch = yield from self._read(Batch, self._batch_spec(source, format, idempotency_key))
        done = yield from self._wait_for_batch(batch, progress, poll_interval, timeout)
        results = self._listing(BatchLine, "list_batch_results", {"batch_id": done.id}, None, RESULTS_PAGE_SIZE)
        return BatchReport(done, (yield from self._every_item(results)))

    @listing
    def list_batches(self, *, cursor: str | None = None, limit: int = PAGE_SIZE) -> Listing[Batch]:
        return self._listing(Batch, "list_batches", {}, cursor, limit)

    @operation
    def get_batch(self, batch_id: str) -> Plan[Batch]:
        return (yield from self._read_batch(batch_id))

    def _read_batch(self, batch_id: str) -> Plan[Batch]:
        return (yield from self._read(Batch, self._call("get_batch", batch_id=batch_id)))

    @listing
    def list_batch_results(
        self,
        batch_id: str,
        *,
        outcome: LineOutcome | None = None,
        cursor: str | None = None,
        limit: int = RESULTS_PAGE_SIZE,
    ) -> Listing[BatchLine]:
        """A batch's per-line results in line order (``outcome="error"`` for the lines to fix)."""
        return self._listing(BatchLine, "list_batch_results", {"batch_id": batch_id}, cursor, limit, outcome=outcome)

    # --- webhooks ---------------------------------------------------------------------------------------------

    @operation
    def create_webhook_endpoint(
        self,
        url: str,
        event_types: Iterable[WebhookEventType],
        *,
        description: str | None = None,
        enabled: bool = True,
        idempotency_key: str | None = None,
    ) -> Plan[WebhookEndpointCreated]:
        """Register an endpoint; keep the returned ``secret`` (shown once) to verify deliveries."""
        body = self._endpoint_body(url, event_types, description, enabled)
        response = yield from self._exchange(self._create("create_webhook_endpoint", body, idempotency_key))
        return self._one(WebhookEndpointCreated, response)

    @listing
    def list_webhook_endpoints(self, *, cursor: str | None = None, limit: int = PAGE_SIZE) -> Listing[WebhookEndpoint]:
        return self._listing(WebhookEndpoint, "list_webhook_endpoints", {}, cursor, limit)

    @operation
    def get_webhook_endpoint(self, endpoint_id: str) -> Plan[WebhookEndpoint]:
        return (yield from self._read(WebhookEndpoint, self._call("get_webhook_endpoint", endpoint_id=endpoint_id)))

    @operation
    def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Iterable[WebhookEventType] | None = None,
        description: Any = _NOT_SET,
        enabled: bool | None = None,
    ) -> Plan[WebhookEndpoint]:
        """Change an endpoint; re-enabling a disabled one resets its failure count."""
        changes = self._endpoint_changes(url, event_types, description, enabled)
        spec = self._action("update_webhook_endpoint", changes, endpoint_id=endpoint_id)
        return (yield from self._read(WebhookEndpoint, spec))

    @operation
    def delete_webhook_endpoint(self, endpoint_id: str) -> Plan[None]:
        """Remove an endpoint: it stops receiving (pending deliveries fail) but stays readable, disabled, with
        its delivery log."""
        yield from self._exchange(self._call("delete_webhook_endpoint", endpoint_id=endpoint_id))

    @operation
    def rotate_webhook_secret(self, endpoint_id: str) -> Plan[SecretRotated]:
        """A new signing secret; the old one keeps signing too until ``previous_secret_expires_at``."""
        spec = self._action("rotate_webhook_secret", endpoint_id=endpoint_id)
        return (yield from self._read(SecretRotated, spec))

    @operation
    def send_test_webhook(self, endpoint_id: str) -> Plan[WebhookDelivery]:
        """Queue a ``webhook.test`` delivery to the endpoint."""
        return (yield from self._read(WebhookDelivery, self._action("send_test_webhook", endpoint_id=endpoint_id)))

    @listing
    def list_webhook_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        status: DeliveryStatus | None = None,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Listing[WebhookDelivery]:
        return self._listing(
            WebhookDelivery, "list_webhook_deliveries", {}, cursor, limit, endpoint_id=endpoint_id, status=status
        )

    @operation
    def get_webhook_delivery(self, delivery_id: str) -> Plan[WebhookDeliveryDetail]:
        """A delivery with its payload and every attempt."""
        response = yield from self._exchange(self._call("get_webhook_delivery", delivery_id=delivery_id))
        return self._one(WebhookDeliveryDetail, response)

    @operation
    def retry_webhook_delivery(self, delivery_id: str) -> Plan[WebhookDelivery]:
        """Send a delivery again (same ``webhook-id``)."""
        spec = self._action("retry_webhook_delivery", delivery_id=delivery_id)
        return (yield from self._read(WebhookDelivery, spec))

    # --- statements and reconciliation ------------------------------------------------------------------------

    @listing
    def list_statements(
        self,
        *,
        period: str | None = None,
        status: StatementStatus | None = None,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Listing[Statement]:
        """Your monthly statements, newest first (``period`` is ``YYYY-MM``)."""
        return self._listing(Statement, "list_statements", {}, cursor, limit, period=period, status=status)

    @operation
    def get_statement(self, statement_id: str) -> Plan[Statement]:
        return (yield from self._read(Statement, self._call("get_statement", statement_id=statement_id)))

    @listing
    def list_statement_lines(
        self,
        statement_id: str,
        *,
        rule: FeeType | None = None,
        cursor: str | None = None,
        limit: int = RESULTS_PAGE_SIZE,
    ) -> Listing[StatementLine]:
        """The fee lines of a statement (``rule`` keeps one fee type)."""
        ids = {"statement_id": statement_id}
        return self._listing(StatementLine, "list_statement_lines", ids, cursor, limit, rule=rule)

    @operation
    def upload_claim(
        self,
        statement_id: str,
        claim: ClaimSource,
        *,
        amounts_include_vat: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Plan[Reconciliation]:
        """Upload your claim for an issued statement and get the matching at once.

        ``claim`` is ``ClaimLine`` objects or dicts (sent as JSON), or a CSV (``external_ref``, ``fee_type``,
        ``amount_fen``) or JSON file (``Path``) or content. A new upload replaces your previous claim.
        ``amounts_include_vat`` defaults to your VAT setting.
        """
        spec = self._claim_spec(statement_id, claim, amounts_include_vat, idempotency_key)
        return (yield from self._read(Reconciliation, spec))

    @operation
    def get_reconciliation(
        self,
        statement_id: str,
        *,
        match_class: MatchClass | None = None,
        open: bool | None = None,
        limit: int = PAGE_SIZE,
    ) -> Plan[Reconciliation]:
        """The matching of your current claim: totals per class and the first page of items."""
        spec = self._list(
            "get_reconciliation", {"statement_id": statement_id}, None, limit, match_class=match_class, open=open
        )
        return (yield from self._read(Reconciliation, spec))

    @listing
    def list_reconciliation_items(
        self,
        statement_id: str,
        *,
        match_class: MatchClass | None = None,
        open: bool | None = None,
        cursor: str | None = None,
        limit: int = RESULTS_PAGE_SIZE,
    ) -> Listing[ReconciliationItem]:
        """Every item of the matching (``open=True``: discrepancies finance has not resolved yet)."""
        ids = {"statement_id": statement_id}
        return self._listing(
            ReconciliationItem, "list_reconciliation_items", ids, cursor, limit, match_class=match_class, open=open
        )

    @operation
    def dispute_statement(self, statement_id: str, reasons: Mapping[str, str]) -> Plan[Dispute]:
        """Dispute reconciliation items, ``{item_id: reason}``; the statement is ``disputed`` until finance has
        resolved every open item."""
        spec = self._action("dispute_statement", self._disputes(reasons), statement_id=statement_id)
        return (yield from self._read(Dispute, spec))

    # --- reports ----------------------------------------------------------------------------------------------

    @operation
    def get_funnel_report(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        group_by: Iterable[ReportDimension] | None = None,
        program_id: Iterable[str] | None = None,
        product: Iterable[str] | None = None,
        tier: Iterable[str] | None = None,
        kind: Iterable[ReferralKind] | None = None,
    ) -> Plan[FunnelReport]:
        """Your funnel: referrals received from ``start`` to ``end`` (days in Asia/Shanghai, inclusive; by default
        the last twelve months), the stages they reached and the rates, grouped by ``group_by`` (``program``,
        ``product``, ``tier``, ``kind``, ``month``)."""
        spec = self._report("get_funnel_report", start, end, group_by, program_id, product, tier, kind)
        return (yield from self._read(FunnelReport, spec))

    @operation
    def get_time_to_convert_report(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        group_by: Iterable[ReportDimension] | None = None,
        program_id: Iterable[str] | None = None,
        product: Iterable[str] | None = None,
        tier: Iterable[str] | None = None,
        kind: Iterable[ReferralKind] | None = None,
    ) -> Plan[TimeToConvertReport]:
        """Days from referral to account opening, funding and conversion (median and 90th percentile)."""
        spec = self._report("get_time_to_convert_report", start, end, group_by, program_id, product, tier, kind)
        return (yield from self._read(TimeToConvertReport, spec))
