"""The rules of outbound targets, and connections that go to the address that was checked."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.core import outbound_urls
from app.core.outbound_urls import UnsafeTarget, is_public_address, normalise_target, outbound_client

# Refused in every environment: the form is wrong whatever the network.
MALFORMED = [
    "https://alice:s3cret@hooks.example/in",
    "https://alice@hooks.example/in",
    "https://:s3cret@hooks.example/in",
    "http://2130706433/",
    "https://0x7f.1/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://1.2.3.256/",
    "https://hooks.example.123/",
    "https://hooks.example\\@evil.example/",
    "https://hooks.example/a b",
    "https://hooks.example/\x00",
    "https://a..b.example/",
    "https://-a.example/",
    "https://under_score.example/",
    "https://[::1%25eth0]/",
    "https://[zz::1]/",
    "https://hooks.example:0/",
    "https://hooks.example:99999/",
    "ftp://hooks.example/",
    "hooks.example/in",
    "https:///in",
    "https://" + "a" * 2000 + ".example/",
]
# Refused outside development: fine forms, but not public targets.
NOT_PUBLIC = [
    "http://hooks.example/in",
    "https://localhost/in",
    "https://localhost./in",
    "https://LOCALHOST./in",
    "https://api.localhost/in",
    "https://intranet/in",
    "https://127.0.0.1/in",
    "https://10.1.2.3/in",
    "https://172.16.0.1/in",
    "https://192.168.1.1/in",
    "https://100.100.100.200/in",
    "https://169.254.169.254/latest/meta-data",
    "https://0.0.0.0/in",
    "https://224.0.0.1/in",
    "https://255.255.255.255/in",
    "https://[::1]/in",
    "https://[::ffff:127.0.0.1]/in",
    "https://[fd00::1]/in",
    "https://[fe80::1]/in",
    "https://[2002:7f00:1::]/in",
    "https://[64:ff9b::a9fe:a9fe]/in",
    # Look-alikes that IDNA maps onto the forms above.
    "https://127\u30020\u30020\u30021/in",
    "https://\uff11\uff12\uff17.0.0.1/in",
    "https://\u24dbocalhost/in",
]


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_malformed_targets_are_refused_everywhere(url: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeTarget) as refused:
        normalise_target(url, allow_private=allow_private)
    assert "s3cret" not in str(refused.value) and "evil" not in str(refused.value)


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_targets_that_are_not_public_are_refused_outside_development(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        normalise_target(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://Hooks.EXAMPLE./in?x=1#part", "https://hooks.example/in?x=1"),
        ("HTTPS://hooks.example:443", "https://hooks.example/"),
        ("https://hooks.example:8443/a/b", "https://hooks.example:8443/a/b"),
        ("https://Bücher.example/ä", "https://xn--bcher-kva.example/%C3%A4"),
        ("https://回调.银行.example/", "https://" + "回调.银行.example".encode("idna").decode() + "/"),
        ("https://8.8.8.8/in", "https://8.8.8.8/in"),
        ("https://[2001:4860:0::1]:8443/", "https://[2001:4860::1]:8443/"),
    ],
)
def test_public_targets_are_kept_in_normal_form(url: str, normal: str) -> None:
    assert normalise_target(url, allow_private=False) == normal


def test_development_allows_loopback_and_plain_http_in_normal_form() -> None:
    assert normalise_target("http://LOCALHOST.:8080/in", allow_private=True) == "http://localhost:8080/in"
    assert normalise_target("http://127.0.0.1:9/hooks", allow_private=True) == "http://127.0.0.1:9/hooks"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("192.0.0.8", False),
        ("198.18.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2001::a9fe:a9fe", False),
    ],
)
def test_only_globally_routable_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


# --- at connection time ---------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP server on loopback that records what reached it."""

    hosts: list[str] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.hosts += [line.split(": ", 1)[1] for line in lines if line.lower().startswith("host: ")]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecret")
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    yield receiver, int(server.sockets[0].getsockname()[1])
    server.close()


def resolving_to(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Make every lookup answer ``answers``; returns the list of names looked up."""
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        lookups.append(host)
        return [ipaddress.ip_address(answer) for answer in answers]

    monkeypatch.setattr(outbound_urls, "resolve_host", resolve)
    return lookups


async def test_a_connection_goes_to_the_checked_address_with_the_original_host(
    monkeypatch: pytest.MonkeyPatch, receiver: tuple[Receiver, int]
) -> None:
    server, port = receiver
    lookups = resolving_to(monkeypatch, "127.0.0.1")
    async with outbound_client(allow_private=True, timeout=5) as client:
        response = await client.get(f"http://hooks.partner.example:{port}/in")
    assert response.text == "secret"
    assert lookups == ["hooks.partner.example"]  # one lookup, and the connection used its answer
    assert server.hosts == [f"hooks.partner.example:{port}"]


@pytest.mark.parametrize(
    "answers",
    [("127.0.0.1",), ("100.100.100.200",), ("93.184.216.34", "127.0.0.1"), ("::1",), ("::ffff:127.0.0.1",)],
)
async def test_a_name_resolving_to_a_non_public_address_is_never_connected(
    monkeypatch: pytest.MonkeyPatch, receiver: tuple[Receiver, int], answers: tuple[str, ...]
) -> None:
    server, port = receiver
    resolving_to(monkeypatch, *answers)
    async with outbound_client(allow_private=False, timeout=5) as client:
        with pytest.raises(UnsafeTarget):
            await client.get(f"https://hooks.partner.example:{port}/in")
    assert server.connections == 0


async def test_an_address_literal_is_checked_at_connection_too(receiver: tuple[Receiver, int]) -> None:
    server, port = receiver
    async with outbound_client(allow_private=False, timeout=5) as client:
        with pytest.raises(UnsafeTarget):
            await client.get(f"http://127.0.0.1:{port}/in")
    assert server.connections == 0


async def test_no_proxy_from_the_environment_and_no_redirects(
    monkeypatch: pytest.MonkeyPatch, receiver: tuple[Receiver, int]
) -> None:
    server, port = receiver
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    resolving_to(monkeypatch, "127.0.0.1")
    async with outbound_client(allow_private=True, timeout=5) as client:
        assert (await client.get(f"http://hooks.partner.example:{port}/in")).status_code == 200
        assert client.follow_redirects is False
    assert server.connections == 1


def test_resolve_host_reads_the_system_resolver() -> None:
    addresses = asyncio.run(outbound_urls.resolve_host("localhost", 80))
    assert addresses and all(address.is_loopback for address in addresses)


async def test_transport_errors_stay_httpx_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    resolving_to(monkeypatch, "127.0.0.1")
    async with outbound_client(allow_private=True, timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://hooks.partner.example:9/in")  # discard port: nothing listens


# --- TLS: the connection goes to the checked address, the certificate is verified for the host name ----------


def _certificate_authority(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a server certificate for ``name``: (the server's context, a client context trusting
    only that CA)."""
    now = datetime.now(UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = certificate("test CA", ca_key, ca_name, ca_key, ca=True)
    server_cert = certificate(name, server_key, ca_name, ca_key, ca=False)
    (tmp_path / "server.pem").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + server_cert.public_bytes(serialization.Encoding.PEM)
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "server.pem")
    client = ssl.create_default_context(cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


@pytest.mark.parametrize(("certified", "accepted"), [("hooks.partner.example", True), ("other.example", False)])
async def test_tls_verifies_the_certificate_for_the_host_name_at_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certified: str, accepted: bool
) -> None:
    server_context, client_context = _certificate_authority(tmp_path, certified)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,func-returns-value]
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=server_context)
    port = int(server.sockets[0].getsockname()[1])
    lookups = resolving_to(monkeypatch, "127.0.0.1")
    transport = outbound_urls.CheckedTransport(allow_private=True, ssl_context=client_context)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            if accepted:
                assert (await client.get(f"https://hooks.partner.example:{port}/in")).text == "secret"
            else:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.get(f"https://hooks.partner.example:{port}/in")
    finally:
        server.close()
    assert lookups == ["hooks.partner.example"] and names == ["hooks.partner.example"]
    assert receiver.hosts == ([f"hooks.partner.example:{port}"] if accepted else [])
