"""How every call is made, written once for both clients as plans (see ``_plans``): a valid token first, the
request, the retries the policy allows, and the answer read into a model."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self, TypeVar

import httpx

from alliance_partner._auth import METADATA_PATH, REVOKE_PATH
from alliance_partner._base import BaseClient, RequestSpec, TokenEndpointBusy, TransportT, env_options, request_of
from alliance_partner._exceptions import AuthenticationError, TransportError, error_for_response
from alliance_partner._models import Page
from alliance_partner._pagination import following
from alliance_partner._plans import FetchToken, Listing, Locked, Plan, RevokeToken, Sleep, operation
from alliance_partner._retry import retryable_error, retryable_status

T = TypeVar("T")

log = logging.getLogger("alliance_partner")


class CallingClient(BaseClient[TransportT]):
    """The token and the sending, shared by ``Client`` and ``AsyncClient``."""

    @classmethod
    def from_env(cls, **options: Any) -> Self:
        """A client configured from ``ALLIANCE_*`` environment variables (see ``env_options``); ``options``
        override them."""
        return cls(**{**env_options(), **options})

    # --- token ------------------------------------------------------------------------------------------------

    @property
    def token(self) -> dict[str, Any] | None:
        """The cached token (``access_token``, ``expires_at``, ``scope``...), None before the first call."""
        return self._http.token  # type: ignore[no-any-return]

    @operation
    def fetch_token(self) -> Plan[dict[str, Any]]:
        """Fetch a new access token now (calls do it by themselves when needed)."""
        token: dict[str, Any] = yield Locked(self._fetch_token())
        return token

    def _fetch_token(self) -> Plan[dict[str, Any]]:
        if self._audience_missing:
            self._set_audience((yield from self._exchange(self._metadata_spec())))
        retry = 0
        while True:
            try:
                token: dict[str, Any] = yield FetchToken()
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
                yield Sleep(delay)

    def _renew_token_if_needed(self) -> Plan[None]:
        if self._token_needed(self._http.token):  # another call may have renewed it while this one waited
            yield from self._fetch_token()

    @operation
    def revoke_token(self) -> Plan[None]:
        """Revoke the cached token (RFC 7009) and forget it; the next call fetches a new one."""
        token = self._http.token
        if token is None:
            return
        response: httpx.Response = yield Locked(self._revoke(token))
        if not response.is_success:
            raise error_for_response(response)

    def _revoke(self, token: Mapping[str, Any]) -> Plan[httpx.Response]:
        response: httpx.Response = yield RevokeToken(self._revoke_options(token))
        self._token_stale = True
        return response

    def _token_needed(self, token: Mapping[str, Any] | None) -> bool:
        if token is None or self._token_stale:
            return True
        if not isinstance(token.get("expires_at"), int):
            return False  # a token without a lifetime is used until the API refuses it
        return bool(token.is_expired(leeway=self.token_renewal_margin))  # type: ignore[attr-defined]

    @property
    def _audience_missing(self) -> bool:
        return self._assertion is not None and self._assertion.audience is None

    @staticmethod
    def _metadata_spec() -> RequestSpec:
        return RequestSpec("GET", METADATA_PATH, authenticated=False)

    def _set_audience(self, response: httpx.Response) -> None:
        issuer = response.json().get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise AuthenticationError("invalid_metadata", "the server metadata names no issuer")
        assert self._assertion is not None
        self._assertion.audience = issuer

    def _token_retry_delay(self, error: Exception, retry: int) -> float | None:
        if isinstance(error, TokenEndpointBusy):
            return self.retry.delay(retry, error.response)
        if isinstance(error, httpx.TransportError):
            return self.retry.delay(retry, None)  # a token request is safe to repeat
        return None

    @staticmethod
    def _token_failure(error: Exception) -> Exception:
        """What to raise once a token request has failed for good."""
        if isinstance(error, httpx.TransportError):
            return TransportError(f"token request failed: {error}", request=request_of(error))
        if isinstance(error, TokenEndpointBusy):
            if error.response.status_code >= 500:
                return error_for_response(error.response)
            return BaseClient._check_refusal(error.response)
        return error

    @staticmethod
    def _revoke_options(token: Mapping[str, Any]) -> dict[str, Any]:
        return {"url": REVOKE_PATH, "token": token.get("access_token"), "token_type_hint": "access_token"}

    # --- retries and sending ----------------------------------------------------------------------------------

    def _error_delay(self, spec: RequestSpec, error: httpx.TransportError, retry: int) -> float | None:
        if not retryable_error(error, spec.replayable):
            return None
        delay = self.retry.delay(retry, None)
        if delay is not None:
            log.info(
                "retrying %s %s after %s (retry %d in %.2fs)",
                spec.method,
                spec.path,
                type(error).__name__,
                retry,
                delay,
            )
        return delay

    def _response_delay(self, spec: RequestSpec, response: httpx.Response, retry: int) -> float | None:
        if not retryable_status(response, spec.replayable):
            return None
        delay = self.retry.delay(retry, response)
        if delay is not None:
            log.info(
                "retrying %s %s after %d (retry %d in %.2fs)",
                spec.method,
                spec.path,
                response.status_code,
                retry,
                delay,
            )
        return delay

    @staticmethod
    def _token_rejected(response: httpx.Response) -> bool:
        """The API refused the token itself (revoked, signed with a retired key...): a new one may do."""
        if response.status_code != 401:
            return False
        return error_for_response(response).code == "invalid-token"

    def _exchange(self, spec: RequestSpec) -> Plan[httpx.Response]:
        """Send ``spec`` until it succeeds or the retry policy gives up, renewing a refused token once."""
        retry = 0
        renewed = False
        while True:
            if spec.authenticated and self._token_needed(self._http.token):
                yield Locked(self._renew_token_if_needed())
            try:
                response: httpx.Response = yield spec
            except httpx.TransportError as error:
                retry += 1
                delay = self._error_delay(spec, error, retry)
                if delay is None:
                    raise TransportError(
                        f"{spec.method} {spec.path} failed: {error}", request=request_of(error)
                    ) from error
                yield Sleep(delay)
                continue
            if response.is_success:
                return response
            if spec.authenticated and not renewed and self._token_rejected(response):
                renewed = True
                self._token_stale = True
                continue
            retry += 1
            delay = self._response_delay(spec, response, retry)
            if delay is None:
                raise error_for_response(response)
            yield Sleep(delay)

    def _read(self, cls: type[T], spec: RequestSpec) -> Plan[T]:
        """Send ``spec`` and read the answer as a ``cls``."""
        return self._one(cls, (yield from self._exchange(spec)))

    @staticmethod
    def _listing(
        cls: type[T], name: str, ids: Mapping[str, str], cursor: str | None, limit: int, **filters: Any
    ) -> Listing[T]:
        return Listing(cls, name, ids, cursor, limit, filters)

    def _fetch_page(self, listing: Listing[T], cursor: str | None) -> Plan[Page[T]]:
        spec = self._list(listing.name, listing.ids, cursor, listing.limit, **listing.filters)
        return self._page(listing.cls, (yield from self._exchange(spec)))

    def _every_item(self, listing: Listing[T]) -> Plan[list[T]]:
        """Every item of a list, page after page (what a pager's ``to_list`` gives)."""
        items: list[T] = []
        cursor = listing.cursor
        while True:
            page = yield from self._fetch_page(listing, cursor)
            items.extend(page.data)
            cursor = following(page)
            if cursor is None:
                return items
