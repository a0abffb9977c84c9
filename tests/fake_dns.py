"""A fake DNS server for tests: authoritative answers from records the test sets, on UDP and TCP.

Built on dnspython's message classes, on one loopback port for both transports (a resolver retries
over TCP when a UDP answer is truncated). The app is pointed at it with
``DNS_NAMESERVERS=fake.nameserver`` ("127.0.0.1:<port>"); in-process, with dnspython::

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(fake.host, fake.port)]

    fake.add_txt("_saas-challenge.acme.test", "saas-verification=abc")    # one record, one string
    fake.add_txt("acme.test", "v=spf1 -all", "second string")             # another, two strings
    fake.add_a("hooks.acme.test", "10.0.0.7")                             # resolves to a private address
    fake.add_aaaa("v6.acme.test", "::1")
    fake.add_record("www.acme.test", "CNAME", "hooks.acme.test.")         # any type, as in a zone file
    fake.rebind("rebind.acme.test", "93.184.216.34", "127.0.0.1")         # first answer, then every later one

Names with no record of their own or below them are NXDOMAIN; a name that exists without the asked
type is NOERROR with an empty answer. A CNAME is followed within the fake's records. Answers are
authoritative, with the records' TTL (300 s; 0 for ``rebind``). A UDP answer larger than the
query allows (512 bytes without EDNS) comes back truncated (TC), so a resolver asks again on TCP.

``mode``: "ok"; "servfail" (SERVFAIL to everything); "refused"; "silent" (no answer at all, so the
resolver times out); "truncate" (every UDP answer truncated: only TCP gets one). Each query is
recorded (``queries``, ``queries_for``). ``reset()`` forgets records, queries and the mode.
"""
from __future__ import annotations

import socketserver
import struct
import threading
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

DEFAULT_TTL = 300
CLASSIC_UDP_LIMIT = 512  # RFC 1035, when the query has no EDNS
MAX_CNAME_CHAIN = 8


class RecordedQuery(NamedTuple):
    transport: str  # "udp" or "tcp"
    name: str  # lower case, no final dot
    rdtype: str  # "A", "TXT", ...


class _UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        answer = self.server.fake.answer(data, "udp")
        if answer is not None:
            sock.sendto(answer, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        # RFC 7766: two-byte length prefix; several queries may share a connection.
        while True:
            prefix = self._read(2)
            if prefix is None:
                return
            data = self._read(struct.unpack("!H", prefix)[0])
            if data is None:
                return
            answer = self.server.fake.answer(data, "tcp")
            if answer is None:
                return
            self.request.sendall(struct.pack("!H", len(answer)) + answer)

    def _read(self, count):
        chunks = b""
        while len(chunks) < count:
            chunk = self.request.recv(count - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return chunks


class _UDPServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True


class FakeDNS:
    """Fake authoritative DNS server; see the module docstring."""

    NAME = "fake-dns"

    def __init__(self):
        self._lock = threading.RLock()
        self._records: dict[tuple, list] = {}  # (name, rdtype) -> answers, each a list of rdata texts
        self._ttls: dict[tuple, int] = {}
        self.queries: list[RecordedQuery] = []
        self._servers = []
        self.host, self.port = "127.0.0.1", 0
        self.reset()

    # -- lifecycle ---------------------------------------------------------------

    def start(self):
        """Serve UDP and TCP on one free loopback port, each in a daemon thread; returns self."""
        for _ in range(50):
            udp = _UDPServer((self.host, 0), _UDPHandler)
            try:
                tcp = _TCPServer((self.host, udp.server_address[1]), _TCPHandler)
            except OSError:  # that port is taken on TCP: try another
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("FakeDNS found no port free on both UDP and TCP")
        self.port = udp.server_address[1]
        for server in (udp, tcp):
            server.fake = self
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=self.NAME, daemon=True)
            thread.start()
            self._servers.append((server, thread))
        return self

    def stop(self) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def nameserver(self) -> str:
        """The ``host:port`` form of ``DNS_NAMESERVERS``."""
        return f"{self.host}:{self.port}"

    def reset(self) -> None:
        """Forget records and recorded queries; mode back to "ok"."""
        with self._lock:
            self._records.clear()
            self._ttls.clear()
            self.queries.clear()
            self.mode = "ok"

    # -- test helpers --------------------------------------------------------

    def add_record(self, name: str, rdtype: str, *rdatas: str, ttl: int = DEFAULT_TTL) -> None:
        """Add one RRset's records (rdata in zone-file text) to whatever ``name`` already has of that type."""
        key = self._key(name, rdtype)
        for rdata in rdatas:  # fail here, in the test, on a typo
            dns.rdata.from_text(dns.rdataclass.IN, key[1], rdata)
        with self._lock:
            answers = self._records.setdefault(key, [[]])
            for answer in answers:
                answer.extend(rdatas)
            self._ttls[key] = ttl

    def add_txt(self, name: str, *strings: str, ttl: int = DEFAULT_TTL) -> None:
        """One TXT record holding ``strings`` (each up to 255 bytes); call again for another record."""
        self.add_record(name, "TXT", " ".join(_quoted(text) for text in strings), ttl=ttl)

    def add_a(self, name: str, *addresses: str, ttl: int = DEFAULT_TTL) -> None:
        self.add_record(name, "A", *addresses, ttl=ttl)

    def add_aaaa(self, name: str, *addresses: str, ttl: int = DEFAULT_TTL) -> None:
        self.add_record(name, "AAAA", *addresses, ttl=ttl)

    def rebind(self, name: str, first: str, then: str, rdtype: str = "A") -> None:
        """DNS rebinding: the first query for ``name`` gets ``first``, every later one ``then``; TTL 0."""
        key = self._key(name, rdtype)
        with self._lock:
            self._records[key] = [[first], [then]]
            self._ttls[key] = 0

    def queries_for(self, name: str, rdtype: str | None = None) -> list[RecordedQuery]:
        wanted = _text(dns.name.from_text(name))
        with self._lock:
            return [q for q in self.queries if q.name == wanted and (rdtype is None or q.rdtype == rdtype.upper())]

    # -- answering -----------------------------------------------------------

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        """The answer's wire form for a query, or None to send nothing."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not even a header to answer to
        if not query.question or query.opcode() != dns.opcode.QUERY:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.FORMERR if not query.question else dns.rcode.NOTIMP)
            return response.to_wire()
        question = query.question[0]
        with self._lock:
            self.queries.append(RecordedQuery(transport, _text(question.name), dns.rdatatype.to_text(question.rdtype)))
            mode = self.mode
            if mode == "silent":
                return None
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if mode in ("servfail", "refused"):
                response.set_rcode(dns.rcode.SERVFAIL if mode == "servfail" else dns.rcode.REFUSED)
                return response.to_wire()
            if question.rdclass == dns.rdataclass.IN:
                self._resolve(question.name, question.rdtype, response)
            else:
                response.set_rcode(dns.rcode.REFUSED)
        if transport == "tcp":
            return response.to_wire()
        limit = max(query.payload, CLASSIC_UDP_LIMIT) if query.edns >= 0 else CLASSIC_UDP_LIMIT
        try:
            if mode == "truncate":
                raise dns.exception.TooBig
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    def _resolve(self, name: dns.name.Name, rdtype, response: dns.message.Message) -> None:
        """Fill the answer section, following CNAMEs; sets NXDOMAIN for a name that does not exist."""
        for _ in range(MAX_CNAME_CHAIN):
            rrset = self._take(name, rdtype)
            if rrset is not None:
                response.answer.append(rrset)
                return
            cname = self._take(name, dns.rdatatype.CNAME) if rdtype != dns.rdatatype.CNAME else None
            if cname is None:
                if not any(owner.is_subdomain(name) for owner, _ in self._records):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return
            response.answer.append(cname)
            name = cname[0].target

    def _take(self, name: dns.name.Name, rdtype) -> dns.rrset.RRset | None:
        """The RRset for a query; a rebinding sequence moves on to its next answer."""
        answers = self._records.get((name, rdtype))
        if not answers:
            return None
        rdatas = answers.pop(0) if len(answers) > 1 else answers[0]
        if not rdatas:
            return None
        return dns.rrset.from_text_list(name, self._ttls[(name, rdtype)], dns.rdataclass.IN, rdtype, rdatas)

    @staticmethod
    def _key(name: str, rdtype: str) -> tuple:
        return dns.name.from_text(name), dns.rdatatype.from_text(rdtype)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()
