"""Host name resolution that never blocks the event loop, ``.local`` names included.

The device announces itself as ``PandaBreath.local``.  The system resolver
runs in the loop's executor (``getaddrinfo`` blocks); when it cannot answer a
``.local`` name (no nss-mdns on the host), Moonraker's own zeroconf library
asks the network directly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class ResolveError(OSError):
    """The device's host name did not resolve; the message says which name."""


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve_host(host: str, timeout: float) -> str:
    """An IP address for ``host`` within ``timeout`` seconds, or ResolveError."""
    if is_ip_literal(host):
        return host
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, asyncio.TimeoutError) as exc:
        if host.rstrip(".").lower().endswith(".local"):
            return await _resolve_mdns(host, timeout)
        raise ResolveError(f"cannot resolve host '{host}': {exc or 'timed out'}") from None
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            return str(sockaddr[0])
    raise ResolveError(f"cannot resolve host '{host}': no IPv4/IPv6 address")


async def _resolve_mdns(host: str, timeout: float) -> str:
    try:
        from zeroconf import AddressResolver
        from zeroconf.asyncio import AsyncZeroconf
    except ImportError:  # Moonraker ships zeroconf; a bare test env may not
        raise ResolveError(f"cannot resolve host '{host}' (no mDNS resolver)") from None
    name = host if host.endswith(".") else host + "."
    aiozc = AsyncZeroconf()
    try:
        resolver = AddressResolver(name)
        if await resolver.async_request(aiozc.zeroconf, int(timeout * 1000)):
            addresses = resolver.parsed_addresses()
            if addresses:
                return addresses[0]
    finally:
        await aiozc.async_close()
    raise ResolveError(f"cannot resolve host '{host}' over mDNS")
