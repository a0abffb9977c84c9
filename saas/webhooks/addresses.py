"""Where a webhook may go: the URL rules at creation, the address rules at every delivery.

A webhook is a request our servers make to a URL a customer chose, from inside our network, so
the URL must never reach what only our network reaches (SSRF): private networks, loopback, the
cloud metadata service (169.254.169.254, fd00:ec2::254), link-local, multicast and reserved
ranges. A host name can point anywhere and change its answer at any moment (DNS rebinding), so
every delivery resolves the host itself, checks every address, and connects to the address it
checked (``transport``); the URL's own check at creation only refuses what is already plain.
"""
import ipaddress
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH, MAX_LABEL_LENGTH = 253, 63  # RFC 1035
# IPv4 addresses inside IPv6 ones: NAT64 (RFC 6052) reaches them through a translator.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not globally reachable, though Python's ``is_global`` lets them through: carrier-grade NAT
# (RFC 6598; Alibaba's metadata is 100.100.100.200), the IETF protocol block (Oracle's metadata is
# 192.0.0.192), local-use NAT64 (RFC 8215).
_NOT_GLOBAL = tuple(ipaddress.ip_network(network) for network in ("100.64.0.0/10", "192.0.0.0/24", "64:ff9b:1::/48"))


class RefusedUrl(ValueError):
    """The URL may not be a webhook's; the message says why."""


def refusal(address, *, allow_loopback):
    """Why ``address`` (an ``ipaddress`` object) may not be connected to, or None when it may."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refusal(embedded, allow_loopback=allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_unspecified or address.is_reserved or not address.is_global or getattr(address, "is_site_local", False):
        return "a private or reserved address"
    if any(address.version == network.version and address in network for network in _NOT_GLOBAL):
        return "a private or reserved address"
    return None


def _embedded_ipv4(address):
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.ip_address(int(address) & 0xFFFFFFFF)
    return None


def check_url(url, *, allow_loopback):
    """The URL as it will be stored, or RefusedUrl: https (http only with ``allow_loopback``), a
    host, no credentials or fragment, and no address literal that ``refusal`` refuses."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"At most {MAX_URL_LENGTH} characters.")
    if not url.isascii() or any(character.isspace() or ord(character) < 32 for character in url):
        raise RefusedUrl("Must be ASCII without spaces (international names in their xn-- form).")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedUrl(f"Not a valid URL: {error}.") from None
    schemes = ("https", "http") if allow_loopback else ("https",)
    if parts.scheme not in schemes:
        raise RefusedUrl("Must be an https:// URL." if not allow_loopback else "Must be an http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("Must not carry credentials: receivers check the webhook-signature header instead.")
    if parts.fragment:
        raise RefusedUrl("Must not have a #fragment.")
    host = parts.hostname
    if not host:
        raise RefusedUrl("Must name a host.")
    if port == 0:
        raise RefusedUrl("Port 0 cannot be connected to.")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        labels = (host[:-1] if host.endswith(".") else host).split(".")
        # "a..b", "hooks.example.." or a label over 63 characters: not a DNS name (and one the
        # TLS layer's IDNA codec refuses with an exception at delivery).
        if len(host) > MAX_HOST_LENGTH or any(not label or len(label) > MAX_LABEL_LENGTH for label in labels):
            raise RefusedUrl("Not a valid host name: empty labels, or labels over 63 characters.")
        if labels[-1].isdigit() or labels[-1].startswith("0x"):
            raise RefusedUrl("Not a valid host name or address.")  # 2130706433, 0x7f.1: an address in disguise
        if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
            address = ipaddress.ip_address("127.0.0.1")
    if address is not None:
        reason = refusal(address, allow_loopback=allow_loopback)
        if reason is not None:
            raise RefusedUrl(f"Must not point at {reason}.")
    return url
