"""Where a webhook may go, without a server: the URL rules at creation, the address rules of every
delivery, the resolver that reads DNS_NAMESERVERS (against the fake DNS server), and the delivery
settings."""
import ipaddress
import socket

import pytest

from config import ConfigError
from saas.core.resolver import NotResolved, addresses
from saas.webhooks import transport
from saas.webhooks.addresses import RefusedUrl, check_url, refusal
from saas.webhooks.transport import NotDelivered
from saas.webhooks.signing import new_secret, signed_headers
from standardwebhooks.webhooks import Webhook
from tests.conftest import make_app, suite_config

REFUSED_ALWAYS = [
    "10.0.0.7", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.100.100.200", "192.0.0.192",
    "224.0.0.1", "239.255.255.250", "0.0.0.0", "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1",
    "fc00::1", "fd00:ec2::254", "fe80::1", "ff02::1", "::", "2001:db8::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "2002:a00:1::1", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "fec0::1",
]
LOOPBACK = ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED_ALWAYS)
def test_private_link_local_multicast_reserved_and_metadata_addresses_are_always_refused(address):
    assert refusal(ipaddress.ip_address(address), allow_loopback=True) is not None
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) is not None


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_is_refused_unless_allowed(address):
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) == "a loopback address"
    assert refusal(ipaddress.ip_address(address), allow_loopback=True) is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) is None


@pytest.mark.parametrize("url, reason", [
    ("http://hooks.example.com/in", "https://"),
    ("https://127.0.0.1/in", "loopback"),
    ("https://localhost:8443/in", "loopback"),
    ("https://app.localhost/in", "loopback"),
    ("https://[::1]/in", "loopback"),
    ("https://10.0.0.1/in", "private"),
    ("https://[fe80::1%25eth0]/in", "link-local"),
    ("https://2130706433/in", "Not a valid host"),
    ("https://0x7f.1/in", "Not a valid host"),
    ("https://user:secret@hooks.example.com/in", "credentials"),
    ("https://hooks.example.com/in#part", "fragment"),
    ("https:///in", "host"),
    ("https://hooks.example.com:0/in", "Port 0"),
    ("https://hooks.example.com:99999/in", "valid URL"),
    ("https://bücher.example/in", "ASCII"),
    ("https://hooks.example.com/" + "a" * 2048, "2048"),
    ("https://hooks.example../in", "empty labels"),
    ("https://hooks..example.com/in", "empty labels"),
    ("https://" + "a" * 64 + ".example.com/in", "63 characters"),
])
def test_urls_are_refused_with_the_reason(url, reason):
    with pytest.raises(RefusedUrl, match=reason):
        check_url(url, allow_loopback=False)


def test_http_and_loopback_are_accepted_only_when_allowed():
    assert check_url("http://127.0.0.1:9000/in", allow_loopback=True) == "http://127.0.0.1:9000/in"
    assert check_url("http://localhost:9000/in", allow_loopback=True)
    with pytest.raises(RefusedUrl, match="private"):
        check_url("http://192.168.0.10/in", allow_loopback=True)
    assert check_url("https://hooks.example.com:8443/in?x=1", allow_loopback=False)
    assert check_url("https://hooks.example.com./in", allow_loopback=False)  # an absolute name


def test_a_stored_host_name_the_tls_layer_refuses_is_a_failed_attempt_not_a_crash(fake_dns):
    """A URL stored before check_url refused empty labels: its delivery is NotDelivered (the
    attempt is settled and retried, then the endpoint disabled), never an exception that leaves
    the delivery pending for the sweep to requeue forever."""
    fake_dns.add_a("hooks.acme.test", "127.0.0.1")
    with socket.create_server(("127.0.0.1", 0)) as listening, \
            make_app(DNS_NAMESERVERS=fake_dns.nameserver).app_context():
        url = f"https://hooks.acme.test..:{listening.getsockname()[1]}/in"
        with pytest.raises(NotDelivered, match="not a valid host name"):
            transport.post(url, b"{}", {}, timeout=5, allow_loopback=True)


def test_the_resolver_asks_the_configured_servers_and_returns_every_address(fake_dns):
    fake_dns.add_a("hooks.acme.test", "93.184.216.34", "10.0.0.7")
    fake_dns.add_aaaa("hooks.acme.test", "2606:4700::1")
    with make_app(DNS_NAMESERVERS=fake_dns.nameserver).app_context():
        found = addresses("hooks.acme.test", lifetime=5)
        assert sorted(map(str, found)) == ["10.0.0.7", "2606:4700::1", "93.184.216.34"]
        assert addresses("127.0.0.1", lifetime=5) == [ipaddress.ip_address("127.0.0.1")]
        assert addresses("api.localhost", lifetime=5) == [ipaddress.ip_address("127.0.0.1")]
        with pytest.raises(NotResolved, match="does not exist"):
            addresses("missing.acme.test", lifetime=5)
        fake_dns.mode = "silent"
        with pytest.raises(NotResolved, match="in time"):
            addresses("hooks.acme.test", lifetime=0.5)
    # absolute names only: no search domain is tried
    assert all(query.name in ("hooks.acme.test", "missing.acme.test") for query in fake_dns.queries)


def test_dns_nameservers_and_the_retry_schedule_are_parsed_and_checked():
    config = suite_config(DNS_NAMESERVERS="1.1.1.1, 127.0.0.1:5353,[::1]:53", WEBHOOK_RETRY_SCHEDULE="5, 300")
    assert config.flask_config()["DNS_NAMESERVERS"] == [("1.1.1.1", 53), ("127.0.0.1", 5353), ("::1", 53)]
    assert config.flask_config()["WEBHOOK_RETRY_SCHEDULE"] == [5, 300]
    defaults = suite_config().flask_config()
    assert defaults["WEBHOOK_RETRY_SCHEDULE"] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert (defaults["WEBHOOK_TIMEOUT_SECONDS"], defaults["WEBHOOK_SECRET_OVERLAP_HOURS"]) == (10, 24)
    assert (defaults["WEBHOOK_DISABLE_AFTER_HOURS"], defaults["WEBHOOKS_ALLOW_LOOPBACK"]) == (72, False)
    assert defaults["DNS_NAMESERVERS"] == []
    for name, value in (("DNS_NAMESERVERS", "dns.google"), ("DNS_NAMESERVERS", "1.1.1.1:0"),
                        ("WEBHOOK_RETRY_SCHEDULE", "5,soon"), ("WEBHOOK_RETRY_SCHEDULE", "0"),
                        ("WEBHOOK_TIMEOUT_SECONDS", "0")):
        with pytest.raises(ConfigError, match=name):
            suite_config(**{name: value})


def test_each_secret_in_use_signs_and_the_reference_package_accepts_either():
    old, new = new_secret(), new_secret()
    assert old.startswith("whsec_") and old != new
    body = '{"data":{},"timestamp":"2026-01-05T10:00:04Z","type":"webhook.test"}'
    headers = signed_headers("msg_abc", body, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"
    with pytest.raises(Exception):
        Webhook(new_secret()).verify(body, headers)
