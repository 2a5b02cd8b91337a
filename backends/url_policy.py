"""Which upstream addresses a replica registered at run time may point the gateway at.

``POST /admin/replicas`` makes the gateway open connections to the URL it names (and
send that replica's upstream key there). Without a policy, whoever holds the admin key
can aim the gateway at a cloud metadata service or another listener that only the
gateway's host can reach. Every address a URL's host resolves to must pass: none in
``deny`` (by default link-local and cloud-metadata ranges, and addresses that are never
a server), and, when ``allow`` is set, each inside one of its networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: refused unless the operator replaces the list (each range says why)
DEFAULT_DENY: tuple[str, ...] = (
    "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the host's own listeners on Linux
    "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, Huawei, Tencent, Oracle metadata (169.254.169.254, ...)
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",  # Azure WireServer (host agent)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
    "::/128",  # unspecified
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::/32",  # AWS metadata over IPv6 (fd00:ec2::254)
    "ff00::/8",  # IPv6 multicast
)


class UrlRefused(ValueError):
    """The URL may not be registered; the message says why."""


class UrlPolicy(BaseModel):
    """``admin.replica_urls`` in the config: where registered replicas may live."""

    model_config = ConfigDict(extra="forbid")

    #: networks registered replicas must be in; empty = any address not denied
    allow: list[IPvAnyNetwork] = Field(default_factory=list)
    #: networks registered replicas may never be in
    deny: list[IPvAnyNetwork] = Field(default_factory=lambda: [ipaddress.ip_network(n) for n in DEFAULT_DENY])

    def check_address(self, address: IPAddress) -> None:
        """Raise UrlRefused unless ``address`` (and any IPv4 address it embeds) is permitted."""
        for candidate in _with_embedded(address):
            for network in self.deny:
                if candidate.version == network.version and candidate in network:
                    raise UrlRefused(f"address {address} is in the denied range {network}")
        if self.allow and not any(
            candidate.version == network.version and candidate in network
            for candidate in _with_embedded(address)
            for network in self.allow
        ):
            raise UrlRefused(f"address {address} is outside the allowed ranges ({', '.join(map(str, self.allow))})")

    async def check_url(self, url: str) -> None:
        """Raise UrlRefused unless ``url`` is http(s) without credentials and all its addresses pass."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UrlRefused(f"{url!r} is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise UrlRefused(f"{url!r}: only http:// and https:// upstreams can be registered")
        if parts.username is not None or parts.password is not None:
            raise UrlRefused("credentials in the URL are refused: the upstream key comes from an environment variable")
        host = parts.hostname
        if not host:
            raise UrlRefused(f"{url!r} names no host")
        for address in await _resolve(host, port):
            self.check_address(address)


def _with_embedded(address: IPAddress) -> list[IPAddress]:
    """The address, plus the IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.append(address.teredo[1])
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UrlRefused(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
    # a scoped IPv6 address comes back as "fe80::1%eth0"; the scope is not part of the address
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
