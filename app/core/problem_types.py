"""The registry of problem types, and the pages that explain them.

Every problem response names its ``type`` as ``/problems/{slug}`` (a URI relative to the service, as RFC 9457
allows), and each of those URIs is a small page of the service with the type's title and what a caller does about
it. ``PROBLEM_TYPES`` is the one list: a slug the code raises is registered here (a test walks every ``Problem``
class and every generic handler to prove it).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.core.problems import PROBLEM_BASE, NotFound


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str
    explanation: str


_TYPES = (
    # Generic HTTP failures.
    (
        "bad-request",
        "Bad request",
        "The request could not be understood as sent (for example a body that is not "
        "the JSON it claims to be). Fix the request; sending it again unchanged gives the same answer.",
    ),
    (
        "unauthorized",
        "Authentication required",
        "The call needs an access token. Obtain one with OAuth 2.0 client "
        "credentials at `POST /oauth/token` and send it as `Authorization: Bearer <token>`.",
    ),
    (
        "invalid-token",
        "Invalid access token",
        "The access token is malformed, expired, revoked, or signed by a key "
        "the service does not know. Obtain a new token and retry.",
    ),
    ("forbidden", "Forbidden", "The caller is authenticated but not allowed to do this."),
    (
        "insufficient-scope",
        "Insufficient scope",
        "The token lacks a scope or role this operation needs; the "
        "`WWW-Authenticate` header names the scope. Ask for a client with that scope.",
    ),
    (
        "not-found",
        "Not found",
        "Nothing exists at this address, or it belongs to another partner (which a partner is "
        "never told). Check the identifier.",
    ),
    (
        "method-not-allowed",
        "Method not allowed",
        "The address exists but does not accept this HTTP method; the `Allow` header lists the ones it does.",
    ),
    (
        "not-acceptable",
        "Not acceptable",
        "The service cannot answer in any of the media types the `Accept` header asks for.",
    ),
    ("conflict", "Conflict", "The request conflicts with the current state of the object; read it again and decide."),
    (
        "payload-too-large",
        "Payload too large",
        "The request body is larger than the service accepts; `detail` gives "
        "the limit. Batches of referrals have a larger limit of their own.",
    ),
    (
        "unsupported-media-type",
        "Unsupported media type",
        "The body's `Content-Type` is not one this operation "
        "reads; the operation's documentation lists the accepted types.",
    ),
    (
        "rate-limited",
        "Too many requests",
        "The caller sent more requests than its allowance. Wait for the number of "
        "seconds in `Retry-After`, then retry.",
    ),
    ("http-error", "HTTP error", "A failure of the HTTP exchange with no more specific type; `status` tells which."),
    (
        "validation-error",
        "Invalid request",
        "One or more fields, parameters or headers failed validation. Each is "
        "listed in `errors` with its location (`loc`), a message and an error type; submitted values are never echoed.",
    ),
    (
        "unprocessable",
        "Unprocessable content",
        "The request is well formed but breaks a rule of the service; `detail` says which.",
    ),
    (
        "invalid-text",
        "Invalid text",
        "A text field or filter contains a character that cannot be stored, such as NUL (U+0000). Remove it and retry.",
    ),
    (
        "internal-error",
        "Internal server error",
        "An unexpected fault on the service's side. Nothing was changed "
        "unless the operation says otherwise; quote `request_id` to support.",
    ),
    (
        "service-unavailable",
        "Service unavailable",
        "The service (usually its database) is briefly unavailable. "
        "Retry after the number of seconds in `Retry-After`; idempotent requests are safe to repeat.",
    ),
    # Shared mechanics.
    (
        "invalid-cursor",
        "Invalid cursor",
        "The `cursor` parameter is not one this list handed out (or belongs to "
        "another list or ordering). Start from the first page again.",
    ),
    (
        "idempotency-key-reused",
        "Idempotency key reused",
        "This `Idempotency-Key` was already used with a different "
        "request body. Use a new key for a new request; resend the same body to get the stored answer.",
    ),
    # Catalog.
    (
        "invalid-transition",
        "Invalid status transition",
        "The object's current status does not allow the change "
        "asked for (for example reactivating a terminated partner, or withdrawing a converted referral).",
    ),
    (
        "fee-schedule-frozen",
        "Fee schedule version is frozen",
        "This fee schedule version has already produced fee "
        "lines, so it is never edited: create a new version that succeeds it from a later date.",
    ),
    (
        "fee-schedule-overlap",
        "Fee schedule versions would overlap",
        "The effective dates would make two versions of "
        "the program's fee schedule apply on the same day. Choose dates that do not overlap.",
    ),
    (
        "catalog-validation",
        "Invalid catalog data",
        "A partner, program, product or fee schedule breaks a catalog "
        "rule (for example a product not allowed for the partner's kind); `detail` says which.",
    ),
    # Referrals and batches.
    (
        "attribution-not-movable",
        "Attribution cannot be moved",
        "This referral cannot take the attribution over: it is not a duplicate of an active holder, its personal "
        "data was erased, or nobody holds the person any more. `detail` says which; the attribution is unchanged.",
    ),
    (
        "attribution-changed",
        "Attribution changed meanwhile",
        "The referrals concerned changed while the move was being made (another move or a conversion event). "
        "Nothing was changed: read the referral again and retry if the move is still wanted.",
    ),
    (
        "program-not-available",
        "Program not available",
        "The program does not exist for this partner or is not active, "
        "or the partner itself is not active, so no referral can be submitted to it.",
    ),
    (
        "external-ref-taken",
        "External reference already used",
        "The partner already used this `external_ref` for "
        "another person. References are unique per partner; the same person sent again returns the existing referral.",
    ),
    (
        "invalid-search",
        "Invalid search",
        "The search of the client registry needs valid criteria; `detail` says what is missing or malformed.",
    ),
    (
        "batch-too-large",
        "Batch too large",
        "The batch file exceeds the largest batch accepted; split it into several batches.",
    ),
    (
        "unsupported-batch-format",
        "Unsupported batch format",
        "Batches are CSV (`text/csv`) or JSON Lines "
        "(`application/x-ndjson`); send one of those media types or a `format` parameter.",
    ),
    (
        "batch-not-decodable",
        "Batch not decodable",
        "The batch file is not text in the declared encoding (UTF-8 unless `charset` says otherwise).",
    ),
    (
        "invalid-batch-header",
        "Invalid CSV header",
        "The first line of a CSV batch must name the columns, with the "
        "required ones present and none repeated; `detail` lists what is wrong.",
    ),
    ("empty-batch", "Empty batch", "The batch has no data lines."),
    ("batch-closed", "Batch closed", "The batch is complete or cancelled and takes no further changes."),
    # Fees and statements.
    ("invalid-period", "Invalid period", "A period is a month written `YYYY-MM`."),
    (
        "risk-case-closed",
        "The risk case is closed",
        "A closed risk case is locked: it cannot be assigned or closed again. A new signal opens a new case.",
    ),
    (
        "risk-assignee-invalid",
        "Not someone who can take the case",
        "A risk case is assigned to a person who acts on risk cases — `person:<username>` of an active "
        "alliance manager — or to nobody (`null`). Check the username; a disabled person cannot take a case.",
    ),
    (
        "signal-foreign-referrals",
        "Referrals of another partner",
        "A risk signal names referrals of its own partner only.",
    ),
    ("period-not-ended", "Period not ended", "A period can be closed only after its last day has ended."),
    (
        "later-period-closed",
        "A later period is already closed",
        "Periods are closed in order: a month cannot be "
        "closed, or receive lines, once a later month is closed. Corrections go to the next open period.",
    ),
    (
        "statement-state-conflict",
        "Not allowed in the statement's state",
        "A statement moves draft, issued, "
        "(disputed), approved, paid; this action is not allowed in its current status.",
    ),
    (
        "second-person-required",
        "Another person must do this",
        "Four eyes: the client or person who issued a statement may not approve it, and the one who approved it "
        "may not mark it paid. Nothing was changed; another finance officer (or finance client) must do it.",
    ),
    (
        "open-reconciliation-items",
        "Reconciliation items are still open",
        "The statement cannot be approved while "
        "items of the partner's claim are unmatched or disputed; resolve them first.",
    ),
    # Sandbox test clocks.
    (
        "clock-moves-forward-only",
        "A test clock only moves forward",
        "A sandbox test clock is advanced to an instant after its "
        "current `now` (read it with `GET /v1/sandbox/clock`); it never goes back nor stays where it is.",
    ),
    (
        "clock-advance-too-far",
        "Too far for one advance",
        "One advance moves a test clock at most 1,830 days (five years); advance again for more.",
    ),
    (
        "partner-required",
        "Name the partner",
        "Staff act on one partner's test clock at a time: name it with `partner_id`.",
    ),
    (
        "simulation-not-possible",
        "The back office cannot report this now",
        "The simulated back office reports what could happen to the referral's client as it stands: an "
        "account opens only for an eligible referral that holds none yet, and every other event needs the "
        "account opened first. `detail` says which; read the referral's status and simulate the missing step.",
    ),
    # Reconciliation.
    (
        "invalid-claim",
        "Invalid claim",
        "The partner's claim is not a valid list of lines (`external_ref`, "
        "`fee_type`, `amount_fen`); `detail` names the first bad line.",
    ),
    (
        "claim-locked",
        "Finance has started resolving this claim",
        "Finance has resolved items of the partner's current "
        "claim, so the claim can no longer be replaced; ask finance first.",
    ),
    (
        "item-not-disputable",
        "Item cannot be disputed",
        "Only an item that does not match (missing on either side or with a different amount) can be disputed.",
    ),
    (
        "item-already-resolved",
        "Item already resolved",
        "The item was already resolved by finance, or matched and needs no resolution.",
    ),
    (
        "claim-too-large",
        "Claim too large",
        "The claim has more lines or bytes than accepted; `detail` gives the limit.",
    ),
    ("unsupported-claim-format", "Unsupported claim format", "Send the claim as `text/csv` or `application/json`."),
    # Integrations.
    (
        "invalid-webhook-target",
        "Invalid webhook target",
        "The webhook URL is not one the service will call: it must "
        "be an https URL with a host that resolves to a public address (outside development); `detail` says which rule "
        "it breaks.",
    ),
    (
        "invalid-client-configuration",
        "Invalid client configuration",
        "The OAuth client's settings are not usable "
        "(for example a JWKS without a usable signing key); `detail` says which.",
    ),
    # People (the console's accounts; raised by `alliance staff create-user`).
    (
        "invalid-person",
        "Invalid person",
        "The person cannot be created as given: a username is 2-64 characters of lowercase letters, digits, '.', "
        "'_' or '-'; `detail` says which rule.",
    ),
    ("username-taken", "Username taken", "Another person already signs in with this username; choose another."),
    # Reports.
    (
        "invalid-report-query",
        "Invalid report query",
        "A report parameter is out of range or not one of the allowed "
        "values (dates, filters, grouping); `detail` says which.",
    ),
)

PROBLEM_TYPES: dict[str, ProblemType] = {slug: ProblemType(slug, title, text) for slug, title, text in _TYPES}

router = APIRouter(prefix=PROBLEM_BASE.rstrip("/"), include_in_schema=False)

_STYLE = (
    "body{font-family:-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;margin:32px;max-width:46em;"
    "color:#1f2933;line-height:1.5}code{background:#f0f4f8;padding:0 3px}dt{font-weight:bold;margin-top:10px}"
)


def _page(title: str, body: str) -> HTMLResponse:
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
    return HTMLResponse(page)


def _prose(text: str) -> str:
    """The explanation as HTML: escaped, with `backticks` as code."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts))


@router.get("", response_class=HTMLResponse)
async def problem_index() -> HTMLResponse:
    items = "".join(
        f'<dt><a href="{PROBLEM_BASE}{kind.slug}">{html.escape(kind.title)}</a></dt><dd>{_prose(kind.explanation)}</dd>'
        for kind in PROBLEM_TYPES.values()
    )
    return _page("Alliance problem types", f"<h1>Problem types</h1>\n<dl>{items}</dl>")


@router.get("/{slug}", response_class=HTMLResponse)
async def problem_page(slug: str) -> HTMLResponse:
    kind = PROBLEM_TYPES.get(slug)
    if kind is None:
        raise NotFound("No such problem type.")
    body = (
        f"<h1>{html.escape(kind.title)}</h1>\n<p>{_prose(kind.explanation)}</p>\n"
        f"<p>Problem type <code>{PROBLEM_BASE}{kind.slug}</code>, sent as <code>application/problem+json</code> "
        f'(RFC 9457). <a href="{PROBLEM_BASE.rstrip("/")}">Every problem type</a>.</p>'
    )
    return _page(kind.title, body)
