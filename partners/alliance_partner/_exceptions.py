"""The SDK's one exception hierarchy.

```
AllianceError
├── TransportError                 the service could not be reached (after the retries)
├── AuthenticationError            the token endpoint refused the client (RFC 6749 error code in ``error``)
├── APIError                       the API answered with an RFC 9457 problem (``type``, ``status``, ``request_id``)
│   ├── BadRequestError            400  e.g. ``invalid-cursor``
│   ├── UnauthorizedError          401  ``unauthorized``, ``invalid-token``
│   ├── PermissionDeniedError      403  ``insufficient-scope``
│   ├── NotFoundError              404  missing, or another partner's object
│   ├── ConflictError              409  ``external-ref-taken``, ``invalid-transition``
│   ├── PayloadTooLargeError       413  ``batch-too-large``
│   ├── UnsupportedMediaTypeError  415  ``unsupported-batch-format``
│   ├── UnprocessableEntityError   422  ``validation-error`` (see ``errors``), ``idempotency-key-reused``...
│   ├── RateLimitError             429  ``rate-limited`` (see ``retry_after``)
│   └── ServerError                5xx  ``internal-error``, ``service-unavailable``
├── BatchError                     a batch failed on the server, or did not finish in time
│   └── BatchTimeoutError
└── WebhookVerificationError       a webhook's signature or timestamp did not verify
```

Catch ``AllianceError`` for everything, ``APIError`` for any refusal by the API, or a status subclass. Quote
``request_id`` to the Alliance support desk: it names the request in the service's logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from alliance_partner._models import Batch

# Problem types are pages of the service, named relative to it: ``/problems/{code}``.
PROBLEM_BASE = "/problems/"


class AllianceError(Exception):
    """Base class of every error the SDK raises."""


class TransportError(AllianceError):
    """The request did not get an answer (connection refused or reset, timeout), even after the retries."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class AuthenticationError(AllianceError):
    """The token endpoint refused to issue a token.

    ``error`` is the RFC 6749 code: ``invalid_client`` (wrong id, secret or key; revoked client; a reused
    assertion), ``invalid_scope`` (a scope the client may not have), ``slow_down`` (too many failures: wait).
    """

    def __init__(self, error: str, description: str | None = None, *, status: int | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status


class APIError(AllianceError):
    """The API refused the request with an RFC 9457 problem document.

    Attributes mirror the document: ``type`` (a stable URI; ``code`` is its last segment), ``title``,
    ``status``, ``detail``, ``instance``, ``request_id`` and, on validation errors, ``errors`` (each with
    ``loc``, ``msg`` and ``type``). ``body`` holds the whole document, extension members included.
    """

    def __init__(
        self,
        *,
        status: int,
        type: str,
        title: str,
        detail: str | None = None,
        instance: str | None = None,
        request_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        message = f"{status} {title}" + (f": {detail}" if detail else "")
        if request_id:
            message += f" (request_id {request_id})"
        super().__init__(message)
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.request_id = request_id
        self.errors = errors or []
        self.body = body or {}
        self.headers = headers

    @property
    def code(self) -> str:
        """The problem type's last segment, e.g. ``external-ref-taken``."""
        return self.type.rsplit("/", 1)[-1]


class BadRequestError(APIError):
    """400."""


class UnauthorizedError(APIError):
    """401: no token, or one that is invalid, expired or revoked (the SDK fetches a new one once by itself)."""


class PermissionDeniedError(APIError):
    """403: the token lacks a scope the call needs."""


class NotFoundError(APIError):
    """404: no such object, or it belongs to another partner (the two are indistinguishable on purpose)."""


class ConflictError(APIError):
    """409: the request conflicts with the current state."""


class PayloadTooLargeError(APIError):
    """413."""


class UnsupportedMediaTypeError(APIError):
    """415."""


class UnprocessableEntityError(APIError):
    """422: the body is invalid (``errors`` lists each field at fault) or cannot be processed."""


class RateLimitError(APIError):
    """429: too many calls; ``retry_after`` is the wait in seconds the service asked for, if it said."""

    @property
    def retry_after(self) -> float | None:
        from alliance_partner._retry import parse_retry_after

        return parse_retry_after(self.headers.get("retry-after") if self.headers is not None else None)


class ServerError(APIError):
    """5xx: a failure on the service's side; quote ``request_id`` to support."""


class BatchError(AllianceError):
    """A batch failed on the server (``batch.status == "failed"``)."""

    def __init__(self, message: str, batch: Batch) -> None:
        super().__init__(message)
        self.batch = batch


class BatchTimeoutError(BatchError):
    """The batch was still being processed when the wait ended; it goes on on the server.

    Resume with ``client.wait_for_batch(error.batch.id)``.
    """


class WebhookVerificationError(AllianceError):
    """A webhook delivery did not verify: a header is missing, the timestamp is outside the tolerance, no
    signature matches, or the body is not JSON. Answer it with 400 and do not act on it."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for_response(response: httpx.Response) -> APIError:
    """The exception for an error response: its problem document, or a synthetic one when the body is not."""
    status = response.status_code
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    errors = body.get("errors")
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, APIError)
    return cls(
        status=status,
        type=str(body.get("type") or PROBLEM_BASE + "http-error"),
        title=str(body.get("title") or response.reason_phrase or "HTTP error"),
        detail=body.get("detail") if isinstance(body.get("detail"), str) else None,
        instance=body.get("instance") if isinstance(body.get("instance"), str) else None,
        request_id=str(request_id) if request_id else None,
        errors=errors if isinstance(errors, list) else None,
        body=body,
        headers=response.headers,
    )
