"""URLs the service calls on a partner's behalf (webhook endpoints, ``jwks_uri``): checked once when they are set,
and again at every connection, against server-side request forgery.

When set, a URL is normalised (lower-case scheme and host, IDNA, no trailing dot, no fragment) and refused with
credentials, with odd host forms that resolvers read as IPv4 (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
``127.1``), or with a host that is not globally routable. At each connection, the host is resolved once, *every*
address is checked, and the connection goes to a checked address itself (TLS still verifies the certificate for
the host name): no second lookup between the check and the connection can rebind the name to a private address.

``allow_private`` (development and test, ``ALLIANCE_WEBHOOK_ALLOW_PRIVATE_TARGETS``) lets loopback and private
addresses and plain http through; the form checks hold everywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from typing import Annotated
from urllib.parse import quote, urlsplit

import httpcore
import httpx
import idna
from pydantic import Field

MAX_URL_CHARS = 2000
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A last label that WHATWG URL parsers (and inet_aton) read as a number makes the whole host an IPv4 address.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_LOCAL_NAMES = ("localhost", "localhost.localdomain")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not globally reachable in the IANA registry, yet ``is_global`` before Python 3.13.
_NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24"))


# In API shapes: a plain string, so that the rules below see the characters as sent (a URL type would already
# have read ``2130706433`` as ``127.0.0.1``).
TargetUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        json_schema_extra={"format": "uri"},
        description="http(s), without credentials; https and public addresses only in production. Stored normalised.",
    ),
]


class UnsafeTarget(ValueError):
    """A URL the service will not call. The message says why, and never repeats the URL."""


def is_public_address(address: IPAddress) -> bool:
    """Globally routable (``is_global``), not multicast, and not a wrapper of a non-global IPv4 address."""
    if not address.is_global or address.is_multicast or any(address in network for network in _NOT_GLOBAL):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return all(is_public_address(inner) for inner in embedded if inner is not None)
    return True


def _host(raw: str) -> tuple[str, IPAddress | None]:
    """The normalised host (as it goes in a URL) and its address when it is an IP literal."""
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:
            raise UnsafeTarget("The URL's IPv6 address is malformed.")
        try:
            address = ipaddress.IPv6Address(raw[1:-1])
        except ValueError as exc:
            raise UnsafeTarget("The URL's IPv6 address is malformed.") from exc
        return f"[{address.compressed}]", address
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or "%" in name:
        raise UnsafeTarget("The URL's host is malformed.")
    try:
        name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise UnsafeTarget("The URL's host is not a valid domain name.") from exc
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:  # four decimal numbers, no leading zeros: the one IPv4 form every parser reads the same way
            return name, ipaddress.IPv4Address(name)
        except ValueError:
            pass
        raise UnsafeTarget("Write an IPv4 address as four decimal numbers (a.b.c.d), or use a host name.")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeTarget("The URL's host is not a valid domain name.")
    return name, None


def normalise_target(url: str, *, allow_private: bool) -> str:
    """The URL in normal form, or ``UnsafeTarget``: see the module's docstring for the rules."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeTarget(f"The URL is longer than {MAX_URL_CHARS} characters.")
    if any(char.isspace() or not char.isprintable() or char == "\\" for char in url):
        raise UnsafeTarget("The URL must not contain spaces, control characters or backslashes.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget("The URL is malformed (host or port).") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.netloc:
        raise UnsafeTarget("The URL must be http(s) with a host.")
    if not allow_private and scheme != "https":
        raise UnsafeTarget("The URL must use https.")
    if "@" in parts.netloc:
        raise UnsafeTarget("The URL must not carry credentials (user:password@).")
    raw_host = parts.netloc.rsplit(":", 1)[0] if parts.netloc.count(":") == 1 or "]:" in parts.netloc else parts.netloc
    host, address = _host(raw_host)
    if port == 0:
        raise UnsafeTarget("The URL's port must be between 1 and 65535.")
    if not allow_private:
        if address is not None and not is_public_address(address):
            raise UnsafeTarget("The URL must not point at a private, loopback or otherwise non-public address.")
        if address is None and (host in _LOCAL_NAMES or host.endswith(".localhost") or "." not in host):
            raise UnsafeTarget("The URL's host must be a public domain name.")
    default_port = 443 if scheme == "https" else 80
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    path = quote(parts.path, safe=_SAFE_PATH) or "/"
    query = quote(parts.query, safe=_SAFE_PATH + "?")
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


# --- at connection time -----------------------------------------------------------------------------------------


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (the one lookup of a connection)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


async def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for ``host``: all of them checked, or ``UnsafeTarget`` if any is refused
    (``OSError`` when the name does not resolve)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    addresses = [literal] if literal is not None else await resolve_host(host, port)
    if not addresses:
        raise OSError("no address")
    if not allow_private and not all(is_public_address(address) for address in addresses):
        raise UnsafeTarget("The URL's host resolves to a private, loopback or otherwise non-public address.")
    return addresses


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves each new connection's host once, checks every address, connects to a checked address."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(host, port, allow_private=self._allow_private)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._network.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTarget("Unix sockets are not outbound targets.")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (TLS verified for the host name, no proxy from the environment) over a network
    backend that checks every address it connects to."""

    def __init__(
        self, *, allow_private: bool, max_connections: int = 100, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend, so its pool is rebuilt with one (httpx's own settings otherwise).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_CheckedBackend(allow_private),
        )


def outbound_client(*, allow_private: bool, timeout: float, max_connections: int = 100) -> httpx.AsyncClient:
    """An HTTP client for partner-given URLs: checked connections, no redirects, no proxy from the environment."""
    return httpx.AsyncClient(
        transport=CheckedTransport(allow_private=allow_private, max_connections=max_connections),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
