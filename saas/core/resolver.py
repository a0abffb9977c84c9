"""Asking DNS ourselves: the servers of DNS_NAMESERVERS (else the system's, from
/etc/resolv.conf), through dnspython.

Whoever must decide on an address before connecting to it (a webhook delivery checks that its
host is no private address, then connects to that very address) resolves here instead of leaving
it to the socket library, which would resolve again when connecting. Names are taken as absolute
(no search domains), so `hooks` never becomes an internal `hooks.cluster.local`.
"""
import ipaddress
import time

import dns.exception
import dns.nameserver
import dns.resolver
from flask import current_app

# RFC 6761: these names are the machine itself, whatever a DNS server says.
LOCALHOST = "localhost"


class NotResolved(Exception):
    """The name has no address, or DNS could not be asked; the message says which."""


def resolver():
    """A resolver asking DNS_NAMESERVERS (``[(address, port)]``), or the system's servers when it is empty."""
    nameservers = current_app.config["DNS_NAMESERVERS"]
    if not nameservers:
        return dns.resolver.Resolver()
    configured = dns.resolver.Resolver(configure=False)
    configured.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers]
    return configured


def addresses(host, *, lifetime):
    """Every address ``host`` resolves to now (A and AAAA), as ``ipaddress`` objects; an address
    literal is itself. Raises NotResolved. ``lifetime``: seconds for all the queries."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    if name == LOCALHOST or name.endswith("." + LOCALHOST):
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        asking = resolver()
    except dns.resolver.NoResolverConfiguration:
        raise NotResolved("no DNS server is configured (DNS_NAMESERVERS)") from None
    give_up_at = time.monotonic() + lifetime  # for both queries together, not each
    found = []
    for record_type in ("A", "AAAA"):
        try:
            answer = asking.resolve(name + ".", record_type, search=False,
                                    lifetime=max(give_up_at - time.monotonic(), 0.001))
        except dns.resolver.NXDOMAIN:
            raise NotResolved(f"{host} does not exist in DNS") from None
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.Timeout:
            raise NotResolved(f"DNS did not answer for {host} in time") from None
        except dns.exception.DNSException as error:
            raise NotResolved(f"DNS failed for {host}: {error.__class__.__name__}") from None
        found += [ipaddress.ip_address(record.address) for record in answer]
    if not found:
        raise NotResolved(f"{host} has no address in DNS")
    return found
