"""The outbound URL policy: which URLs and addresses AFMTS may call (DESIGN.md, "Outbound calls").

One policy for every outbound call — discovery listings, health probes, the gateway's upstream
calls, benchmarks and agents' endpoints. It is checked twice:
- at registration (`check_url`, and `check_url_resolved` which also resolves the name when that is
  cheap), so a bad URL is refused with a 400 naming the field and the rule;
- at connect time on every resolved address (`check_connect`, called from the transports' resolver
  hooks in registry/providers/http.py), which is the real guard: it also covers URLs written to the
  database directly, DNS rebinding, and names that resolve somewhere they should not.

The rules:
- only `http` and `https`;
- always refused, whatever the settings: link-local and cloud metadata addresses (169.254.0.0/16,
  fe80::/10, fd00:ec2::254, 100.100.100.200, `metadata.google.internal`, ...) in any notation —
  IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) is judged as the IPv4 address it carries,
  and decimal/octal/hex/short IPv4 forms are refused outright; unspecified (0.0.0.0/8, ::),
  multicast, broadcast and reserved addresses;
- loopback, private, CGNAT and other non-global addresses: allowed for local-server kinds (ollama,
  openai_compatible), refused for hosted kinds and agents unless AFMTS_ALLOW_PRIVATE_UPSTREAMS is on,
  the host (or host:port) is in AFMTS_ALLOWED_UPSTREAM_HOSTS, or it is the demo providers' fake
  server (AFMTS_DEMO, 127.0.0.1:AFMTS_DEMO_PORT).

Imports nothing of the project, so every layer may use it."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = frozenset({"http", "https"})
# Kinds that are local servers by nature: Ollama and vLLM/LM Studio/llama.cpp users run them on
# loopback or the LAN. Mirrors the adapters' always_local / loopback_is_local (a test keeps them equal).
LOCAL_KINDS = frozenset({"ollama", "openai_compatible"})
# The kind agents' endpoints are checked as: a hosted kind (an agent is registered by any key).
AGENT = "agent"
METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    "metadata.azure.internal", "metadata.tencentyun.com",
})
# Metadata services outside the link-local range: AWS's IPv6 one, Alibaba's (inside CGNAT space).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_ISH = re.compile(r"^[0-9a-fx.]+$")
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="urlpolicy")


class Refused(ValueError):
    """A URL or address the policy refuses. `rule` is a short machine name (scheme, host,
    ipv4_notation, metadata, link_local, unspecified, multicast, reserved, private); the message
    names the host and the rule, never the rest of the URL (it may carry credentials)."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule
        self.message = message


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    value = int(ip)
    if ip in _NAT64 or (1 < value < 2**32):  # NAT64, or IPv4-compatible (::a.b.c.d, deprecated)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress) -> tuple[str | None, bool]:
    """(the always-refused rule it breaks or None, whether it is loopback/private/non-global)."""
    inner = _embedded_v4(ip)
    if inner is not None:
        return classify(inner)
    if ip in METADATA_ADDRESSES:
        return "metadata", True
    if ip.is_link_local:
        return "link_local", True
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "unspecified", True
    if ip.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
        return None, True
    if ip.is_multicast:
        return "multicast", True
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast", True
    if ip.is_reserved:
        return "reserved", True
    return None, not ip.is_global


_WHY = {
    "metadata": "a cloud metadata address (never allowed)",
    "link_local": "a link-local address (never allowed)",
    "unspecified": "an unspecified address (never allowed)",
    "multicast": "a multicast address (never allowed)",
    "broadcast": "a broadcast address (never allowed)",
    "reserved": "a reserved address (never allowed)",
}


def private_allowed(kind: str, host: str, port: int | None) -> bool:
    """Whether a `kind` upstream at host:port may be on a loopback or private address."""
    if kind in LOCAL_KINDS or getattr(settings, "AFMTS_ALLOW_PRIVATE_UPSTREAMS", False):
        return True
    host = host.lower().rstrip(".")
    allowed = {str(h).lower().strip() for h in getattr(settings, "AFMTS_ALLOWED_UPSTREAM_HOSTS", ()) or ()}
    if host in allowed or f"{host}:{port}" in allowed or f"[{host}]:{port}" in allowed:
        return True
    return (bool(getattr(settings, "AFMTS_DEMO", False)) and host in ("127.0.0.1", "localhost")
            and port == getattr(settings, "AFMTS_DEMO_PORT", None))


def _shown(host: str, ip: IPAddress) -> str:
    try:
        same = ipaddress.ip_address(host.split("%", 1)[0]) == ip
    except ValueError:
        same = False
    return host if same else f"{host} ({ip})"


def check_address(address: str | IPAddress, *, kind: str | None, host: str, port: int | None) -> None:
    """Refuse an address `host` resolved to (or `host` itself when it is an address). With `kind`
    None only the always-refused rules apply (a check before the kind is known)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    rule, private = classify(ip)
    if rule is not None:
        raise Refused(rule, f"{_shown(host, ip)} is {_WHY[rule]}")
    if private and kind is not None and not private_allowed(kind, host, port):
        raise Refused("private", f"{_shown(host, ip)} is a loopback or private address, allowed only for local-server kinds "
                                 f"({', '.join(sorted(LOCAL_KINDS))}); the operator may allow it with "
                                 "AFMTS_ALLOW_PRIVATE_UPSTREAMS or AFMTS_ALLOWED_UPSTREAM_HOSTS")


def check_host(host: str) -> IPAddress | None:
    """Refuse a host name by its spelling; returns the address when the host is an IP literal."""
    host = host.lower()
    if not host or host.endswith(".."):
        raise Refused("host", "the URL has no valid host")
    bare = host.rstrip(".")
    if bare in METADATA_HOSTS or bare.endswith(".metadata.google.internal"):
        raise Refused("metadata", f"{bare} is a cloud metadata host (never allowed)")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    if _IPV4_ISH.match(bare):
        try:
            socket.inet_aton(bare)
        except OSError:
            return None
        # 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 127.1: resolvers read these as addresses.
        raise Refused("ipv4_notation", f"{bare} is an IPv4 address in a non-canonical notation "
                                       "(decimal, octal, hex or shortened); write it as a.b.c.d")
    return None


def split_url(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL, or Refused for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Refused("host", "the URL is not valid (host or port)") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise Refused("scheme", f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    host = parts.hostname or ""
    return host, port or (443 if parts.scheme.lower() == "https" else 80)


def check_url(url: str, *, kind: str | None) -> None:
    """The syntactic check: scheme, host spelling, and the address when the host is an IP literal."""
    host, port = split_url(url)
    ip = check_host(host)
    if ip is not None:
        check_address(ip, kind=kind, host=host, port=port)


def resolve(host: str, port: int, timeout: float = 2.0) -> list[str] | None:
    """The addresses `host` resolves to, or None when it does not resolve within `timeout` (then
    the connect-time check decides)."""
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return [info[4][0] for info in future.result(timeout=timeout)]
    except (OSError, UnicodeError, concurrent.futures.TimeoutError):
        return None


def check_url_resolved(url: str, *, kind: str | None, timeout: float = 2.0) -> None:
    """Registration: `check_url` plus every address the host resolves to now (if it resolves)."""
    check_url(url, kind=kind)
    host, port = split_url(url)
    check_connect(host, port, resolve(host, port, timeout) or (), kind=kind)


def check_connect(host: str, port: int | None, addresses: Iterable[str], *, kind: str | None) -> None:
    """The connect-time check: the host's spelling and every address it resolved to. Any refused
    address refuses the connection (a name that resolves to both a public and a metadata address is
    a rebinding attempt, not a choice)."""
    check_host(host)
    for address in addresses:
        check_address(address, kind=kind, host=host.lower().rstrip(".").strip("[]"), port=port)


def message(exc: Refused) -> str:
    """A refusal as a registration form shows it (the rule, then why)."""
    return f"Refused by the outbound URL policy ({exc.rule}): {exc.message}."


def message_for(url: str, *, kind: str | None, resolve: bool = True) -> str | None:
    """The refusal message for a registration form, or None when the URL passes."""
    try:
        (check_url_resolved if resolve else check_url)(url, kind=kind)
    except Refused as exc:
        return message(exc)
    return None
