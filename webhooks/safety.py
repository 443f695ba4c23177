"""Outbound safety of webhook calls (docs/webhooks.md, Safety).

Two checks, the same rules:

- ``check_url`` when an endpoint is registered or changed: ``http``/``https`` with a host, no
  user info, no fragment; in production ``https`` only, and a host that is an IP literal or a
  name that resolves must be a public address unless ``ESCROW_WEBHOOK_ALLOW_PRIVATE``; in
  development ``http`` only to loopback (``localhost``, 127.0.0.0/8, ::1).
- ``GuardedBackend`` at connect time: the name is resolved here, every address is checked, and
  the connection goes to a checked address (TLS still verifies the certificate for the name).
  A name that resolved to a public address at registration and to 127.0.0.1 later (DNS
  rebinding) is refused when it matters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

import httpcore

from webhooks.settings import WebhookSettings

UrlProblem = Literal["invalid_url", "url_not_https", "url_not_allowed"]
MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 5.0
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """A webhook URL the rules refuse; ``code`` is the stable error code."""

    def __init__(self, code: UrlProblem, message: str) -> None:
        super().__init__(message)
        self.code: UrlProblem = code
        self.message = message


class AddressNotAllowed(httpcore.ConnectError):
    """A connection refused because the target address is private, loopback or link-local."""


def _address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address (not private, loopback, link-local, CGNAT,
    reserved, multicast or unspecified)."""
    return address.is_global and not address.is_multicast


def is_loopback_host(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def check_url(url: str, settings: WebhookSettings) -> str:
    """The URL if the rules allow it as an endpoint (without resolving names); else
    ``UrlRefused``."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused("invalid_url", f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UrlRefused("invalid_url", "the URL cannot be parsed") from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("invalid_url", "give an absolute http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("invalid_url", "the URL must not carry user info (user:password@)")
    if parts.fragment:
        raise UrlRefused("invalid_url", "the URL must not have a #fragment")
    if any(ch.isspace() for ch in url.strip()):
        raise UrlRefused("invalid_url", "the URL must not contain spaces")
    host = parts.hostname
    if parts.scheme == "http":
        if settings.production:
            raise UrlRefused("url_not_https", "webhook URLs must use https in production")
        if not is_loopback_host(host):
            raise UrlRefused(
                "url_not_https", "http is allowed only to loopback (localhost) in development"
            )
    if not settings.private_targets_allowed:
        address = _address(host)
        if (address is not None and not is_public(address)) or is_loopback_host(host):
            raise UrlRefused(
                "url_not_allowed",
                "the URL points to a private, loopback or link-local address"
                " (ESCROW_WEBHOOK_ALLOW_PRIVATE allows it)",
            )
    return url.strip()


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal: itself)."""
    literal = _address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT
    )
    found: list[IPAddress] = []
    for info in infos:
        address = _address(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


async def check_resolved(url: str, settings: WebhookSettings) -> None:
    """At registration in production: refuse a name that resolves to a private address now. A
    name that does not resolve yet is accepted (the connect-time check decides)."""
    if settings.private_targets_allowed:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = await resolve(host, parts.port or 443)
    except (OSError, TimeoutError, UnicodeError):
        return
    if any(not is_public(a) for a in addresses):
        raise UrlRefused(
            "url_not_allowed",
            "the URL's host resolves to a private, loopback or link-local address",
        )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check at connect time."""

    def __init__(self, *, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except (OSError, TimeoutError, UnicodeError) as err:
            raise httpcore.ConnectError(f"cannot resolve {host}: {type(err).__name__}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self.allow_private:
            refused = [a for a in addresses if not is_public(a)]
            if refused:
                raise AddressNotAllowed(
                    f"{host} resolves to {refused[0]}, a private, loopback or link-local address"
                )
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                last = err
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are never sent over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
