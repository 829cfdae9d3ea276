"""The address of the client behind a request, as far as this server can trust it.

`REMOTE_ADDR` is the peer of the TCP connection: the client itself, or the last proxy in
front of the platform. `X-Forwarded-For` is written by whoever sends the request, so it is
read only when `FRAMELAB_TRUSTED_PROXIES` (env `FRAMELAB_TRUSTED_PROXIES`, default 0) says
how many proxies stand in front of the platform. Each proxy appends the address it received
the request from, so with N proxies the client's address is the N-th entry from the right;
entries further left were written by the client and are ignored. This is the rule DRF's
`NUM_PROXIES` follows (set from the same setting), so the API's throttles and the login limits
(core/login_limits.py) see the same address.
"""
from __future__ import annotations

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    """The client's address: from `X-Forwarded-For` behind trusted proxies, else REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = int(getattr(settings, "FRAMELAB_TRUSTED_PROXIES", 0) or 0)
    if proxies <= 0:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    # Fewer entries than proxies: a proxy did not add one; the leftmost is the best there is.
    return hops[-min(proxies, len(hops))]


def address_key(address: str) -> str:
    """What limits count by: the address itself, or for IPv6 its /64 network, since one
    client commonly holds a whole /64 and could change address with every request."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
