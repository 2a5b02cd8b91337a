"""Where a replica registered at run time may point the gateway: never metadata or link-local addresses."""

from __future__ import annotations

import ipaddress

import pytest

from backends.url_policy import UrlPolicy, UrlRefused

DENIED_BY_DEFAULT = [
    "169.254.169.254", "169.254.0.23", "100.100.100.200", "168.63.129.16", "0.0.0.0", "224.0.0.1",
    "255.255.255.255", "::", "fe80::1", "fd00:ec2::254", "ff02::1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "2002:a9fe:a9fe::1",  # 6to4 carrying 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]
ALLOWED_BY_DEFAULT = ["10.0.0.5", "192.168.1.20", "127.0.0.1", "100.64.0.1", "2001:db8::1", "::1"]


@pytest.mark.parametrize("address", DENIED_BY_DEFAULT)
def test_metadata_link_local_and_never_a_server_addresses_are_denied(address: str) -> None:
    with pytest.raises(UrlRefused):
        UrlPolicy().check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED_BY_DEFAULT)
def test_ordinary_server_addresses_are_allowed(address: str) -> None:
    UrlPolicy().check_address(ipaddress.ip_address(address))


def test_an_allow_list_admits_only_its_networks() -> None:
    policy = UrlPolicy(allow=["10.0.0.0/8", "fd12::/16"])
    policy.check_address(ipaddress.ip_address("10.1.2.3"))
    policy.check_address(ipaddress.ip_address("fd12::7"))
    for outside in ("192.168.0.1", "127.0.0.1", "2001:db8::1"):
        with pytest.raises(UrlRefused, match="outside"):
            policy.check_address(ipaddress.ip_address(outside))


async def test_a_host_name_is_checked_by_every_address_it_resolves_to() -> None:
    await UrlPolicy().check_url("http://localhost:8000/v1")
    with pytest.raises(UrlRefused, match="outside"):
        await UrlPolicy(allow=["10.0.0.0/8"]).check_url("http://localhost:8000/v1")


@pytest.mark.parametrize(
    "url", ["ftp://10.0.0.5/v1", "http://user:secret@10.0.0.5/v1", "http:///v1", "http://10.0.0.5:99999/v1"]
)
async def test_only_plain_http_urls_without_credentials_are_accepted(url: str) -> None:
    with pytest.raises(UrlRefused):
        await UrlPolicy().check_url(url)
