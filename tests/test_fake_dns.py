"""Exercise tests/fake_dns.py as the app will: dnspython's stub resolver, built without the system's
settings and pointed at the fake (as DNS_NAMESERVERS=127.0.0.1:<port> will), over UDP and TCP."""
import subprocess
import sys

import dns.exception
import dns.flags
import dns.message
import dns.nameserver
import dns.query
import dns.rcode
import dns.resolver
import pytest


def resolver_for(fake, lifetime=2.0):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(fake.host, fake.port)]
    resolver.lifetime = lifetime
    return resolver


@pytest.fixture
def resolver(fake_dns):
    return resolver_for(fake_dns)


def txt_values(answer):
    """Each TXT record's strings, joined as a verifier reads them."""
    return sorted(b"".join(record.strings).decode() for record in answer)


def test_the_nameserver_setting_names_the_host_and_port(fake_dns):
    host, port = fake_dns.nameserver.split(":")

    assert (host, int(port)) == ("127.0.0.1", fake_dns.port)
    fake_dns.add_a("app.acme.test", "203.0.113.10")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [host], int(port)  # the other way to give dnspython a port
    assert [record.address for record in resolver.resolve("app.acme.test", "A")] == ["203.0.113.10"]


def test_a_domain_verification_record(fake_dns, resolver):
    fake_dns.add_txt("_saas-challenge.acme.test", "saas-verification=0123456789abcdef")

    answer = resolver.resolve("_saas-challenge.acme.test", "TXT")

    assert txt_values(answer) == ["saas-verification=0123456789abcdef"]
    assert answer.response.flags & dns.flags.AA
    assert fake_dns.queries_for("_saas-challenge.acme.test", "TXT")[0].transport == "udp"


def test_several_txt_records_and_several_strings_in_one(fake_dns, resolver):
    fake_dns.add_txt("_saas-challenge.acme.test", "v=spf1 -all")
    fake_dns.add_txt("_saas-challenge.acme.test", "saas-verification=", "split-across-two-strings")

    answer = resolver.resolve("_saas-challenge.acme.test", "TXT")

    assert sorted(tuple(record.strings) for record in answer) == [
        (b"saas-verification=", b"split-across-two-strings"), (b"v=spf1 -all",)]
    assert txt_values(answer) == ["saas-verification=split-across-two-strings", "v=spf1 -all"]


def test_names_are_case_insensitive(fake_dns, resolver):
    fake_dns.add_a("Hooks.ACME.test", "203.0.113.7")

    assert [r.address for r in resolver.resolve("hooks.acme.TEST.", "A")] == ["203.0.113.7"]
    assert fake_dns.queries_for("HOOKS.acme.test") != []


def test_a_and_aaaa_records_including_private_and_loopback_addresses(fake_dns, resolver):
    fake_dns.add_a("hooks.acme.test", "10.0.0.7", "203.0.113.7")
    fake_dns.add_aaaa("hooks.acme.test", "::1")

    assert sorted(r.address for r in resolver.resolve("hooks.acme.test", "A")) == ["10.0.0.7", "203.0.113.7"]
    assert [r.address for r in resolver.resolve("hooks.acme.test", "AAAA")] == ["::1"]


def test_an_unknown_name_is_nxdomain_and_a_missing_type_is_no_answer(fake_dns, resolver):
    fake_dns.add_txt("_saas-challenge.acme.test", "saas-verification=x")

    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("_saas-challenge.globex.test", "TXT")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("_saas-challenge.acme.test", "A")
    with pytest.raises(dns.resolver.NoAnswer):  # an empty non-terminal exists
        resolver.resolve("acme.test", "TXT")


def test_a_cname_is_followed(fake_dns, resolver):
    fake_dns.add_record("innocent.acme.test", "CNAME", "metadata.acme.test.")
    fake_dns.add_a("metadata.acme.test", "169.254.169.254")

    answer = resolver.resolve("innocent.acme.test", "A")

    assert [r.address for r in answer] == ["169.254.169.254"]
    assert answer.canonical_name.to_text() == "metadata.acme.test."


def test_rebinding_changes_the_address_between_two_queries(fake_dns, resolver):
    fake_dns.rebind("rebind.acme.test", "203.0.113.9", "127.0.0.1")

    first = resolver.resolve("rebind.acme.test", "A")
    later = [resolver.resolve("rebind.acme.test", "A") for _ in range(2)]

    assert [r.address for r in first] == ["203.0.113.9"]
    assert [[r.address for r in answer] for answer in later] == [["127.0.0.1"], ["127.0.0.1"]]
    assert first.rrset.ttl == 0
    assert len(fake_dns.queries_for("rebind.acme.test", "A")) == 3


def test_a_large_answer_is_truncated_on_udp_and_served_on_tcp(fake_dns, resolver):
    for number in range(12):
        fake_dns.add_txt("big.acme.test", f"record-{number}-" + "x" * 60)

    answer = resolver.resolve("big.acme.test", "TXT")

    assert len(answer) == 12
    assert [q.transport for q in fake_dns.queries_for("big.acme.test")] == ["udp", "tcp"]
    truncated = dns.query.udp(dns.message.make_query("big.acme.test", "TXT"), fake_dns.host, port=fake_dns.port,
                              timeout=2)
    assert truncated.flags & dns.flags.TC and not truncated.answer


def test_edns_lets_a_larger_answer_through_udp(fake_dns, resolver):
    for number in range(12):
        fake_dns.add_txt("big.acme.test", f"record-{number}-" + "x" * 60)
    resolver.use_edns(0, 0, 4096)

    assert len(resolver.resolve("big.acme.test", "TXT")) == 12
    assert [q.transport for q in fake_dns.queries_for("big.acme.test")] == ["udp"]


def test_truncate_mode_sends_every_query_to_tcp(fake_dns, resolver):
    fake_dns.add_a("app.acme.test", "203.0.113.10")
    fake_dns.mode = "truncate"

    assert [r.address for r in resolver.resolve("app.acme.test", "A")] == ["203.0.113.10"]
    assert [q.transport for q in fake_dns.queries] == ["udp", "tcp"]


@pytest.mark.parametrize("mode, rcode", [("servfail", dns.rcode.SERVFAIL), ("refused", dns.rcode.REFUSED)])
def test_a_failing_server(fake_dns, resolver, mode, rcode):
    fake_dns.add_a("app.acme.test", "203.0.113.10")
    fake_dns.mode = mode

    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve("app.acme.test", "A")
    response = dns.query.udp(dns.message.make_query("app.acme.test", "A"), fake_dns.host, port=fake_dns.port, timeout=2)
    assert response.rcode() == rcode


def test_a_silent_server_times_out(fake_dns):
    fake_dns.add_a("app.acme.test", "203.0.113.10")
    fake_dns.mode = "silent"

    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver_for(fake_dns, lifetime=0.3).resolve("app.acme.test", "A")


def test_a_record_given_in_a_bad_form_fails_in_the_test(fake_dns):
    with pytest.raises(dns.exception.SyntaxError):
        fake_dns.add_a("app.acme.test", "not-an-address")


def test_reset_forgets_records_queries_and_the_mode(fake_dns, resolver):
    fake_dns.add_a("app.acme.test", "203.0.113.10")
    fake_dns.mode = "servfail"

    fake_dns.reset()

    assert fake_dns.mode == "ok" and fake_dns.queries == []
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("app.acme.test", "A")


def test_a_subprocess_resolves_through_it(fake_dns):
    """The app's gunicorn and worker are other processes: they reach the fake at its host:port."""
    fake_dns.add_txt("_saas-challenge.acme.test", "saas-verification=from-a-child")
    script = (
        "import sys, dns.resolver\n"
        "host, port = sys.argv[1].split(':')\n"
        "resolver = dns.resolver.Resolver(configure=False)\n"
        "resolver.nameservers, resolver.port = [host], int(port)\n"
        "print(b''.join(resolver.resolve(sys.argv[2], 'TXT')[0].strings).decode())\n"
    )

    result = subprocess.run([sys.executable, "-c", script, fake_dns.nameserver, "_saas-challenge.acme.test"],
                            capture_output=True, text=True, timeout=30, check=True)

    assert result.stdout.strip() == "saas-verification=from-a-child"
