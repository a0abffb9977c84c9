"""One webhook request, to an address checked first, within one deadline.

The host is resolved here (``saas.core.resolver``), every address it has is checked
(``addresses.refusal``: one refused address refuses the delivery, since the name's owner chose
it), and the connection goes to a checked address: the URL's host is still what the request
says (``Host``), what TLS names (SNI) and what the certificate must prove, so nothing resolves
the name a second time between the check and the connection (DNS rebinding).

The whole exchange (DNS, connecting, TLS, sending, the status line and headers, 1 KB of body)
has ``timeout`` seconds: each socket operation waits at most what is left, and a watchdog shuts
the socket when the time is up, so a receiver that trickles a byte a second cannot hold a
worker longer. Redirects are answers like any other (never followed); the body is read up to
1 KB. Certificates are checked against the system's CA store (``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` change it, as for any OpenSSL program).
"""
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from saas.core.resolver import NotResolved, addresses
from saas.webhooks.addresses import refusal

MAX_RESPONSE_BYTES = 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class NotDelivered(Exception):
    """No answer: refused before connecting, or the connection or the time failed."""


class _Deadline:
    """Seconds left of one exchange, and the watchdog that shuts its sockets when none are."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._sockets = []
        self._lock = threading.Lock()
        self._watchdog = threading.Timer(seconds, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def left(self):
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise NotDelivered(self.message())
        return remaining

    def message(self):
        return f"no answer within {self.seconds} s (WEBHOOK_TIMEOUT_SECONDS)"

    def watch(self, sock):
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            raise NotDelivered(self.message())
        sock.settimeout(self.left())
        return sock

    def _expire(self):
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                # The plain socket's shutdown, also for a TLS one: it stops a blocked read at once.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self._watchdog.cancel()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, address, deadline):
        super().__init__(host, port, timeout=deadline.left())
        self._address, self._deadline = address, deadline

    def connect(self):
        self.sock = self._deadline.watch(
            socket.create_connection((str(self._address), self.port), timeout=self._deadline.left())
        )


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, address, deadline):
        super().__init__(host, port, timeout=deadline.left(), context=ssl.create_default_context())
        self._address, self._deadline = address, deadline

    def connect(self):
        raw = self._deadline.watch(
            socket.create_connection((str(self._address), self.port), timeout=self._deadline.left())
        )
        tls = self._context.wrap_socket(raw, server_hostname=self.host, do_handshake_on_connect=False)
        self.sock = self._deadline.watch(tls)
        tls.do_handshake()


def post(url, body, headers, *, timeout, allow_loopback):
    """POST ``body`` (bytes) to ``url``; the Answer, or NotDelivered saying why there is none."""
    deadline = _Deadline(timeout)
    try:
        return _post(urlsplit(url), body, headers, deadline, allow_loopback)
    except NotDelivered:
        raise
    except ssl.SSLCertVerificationError as error:
        raise NotDelivered(f"TLS certificate not accepted: {error.verify_message}") from None
    except UnicodeError:  # a host name the IDNA codec refuses (stored before check_url refused it)
        raise NotDelivered("not a valid host name") from None
    except (OSError, http.client.HTTPException) as error:
        if deadline.expired or isinstance(error, TimeoutError):
            raise NotDelivered(deadline.message()) from None
        raise NotDelivered(_describe(error)) from None
    finally:
        deadline.close()


def _post(parts, body, headers, deadline, allow_loopback):
    host = parts.hostname
    try:
        found = addresses(host, lifetime=deadline.left())
    except NotResolved as error:
        raise NotDelivered(str(error)) from None
    for address in found:
        reason = refusal(address, allow_loopback=allow_loopback)
        if reason is not None:
            # Not the address itself: a customer must not learn what our internal names resolve to.
            raise NotDelivered(f"refused: {host} resolves to {reason}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    connection_class = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    last_error = None
    for address in found:  # the first that takes the connection
        connection = connection_class(host, port, address, deadline)
        try:
            connection.connect()
        except (ConnectionError, socket.timeout, OSError) as error:
            if isinstance(error, ssl.SSLError) or deadline.expired:
                connection.close()
                raise
            last_error = error
            connection.close()
            continue
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            try:
                answered = response.read(MAX_RESPONSE_BYTES)
            except (OSError, http.client.HTTPException):
                answered = b""  # the status came in time; the body is only for the record
            return Answer(response.status, answered)
        finally:
            connection.close()
    raise NotDelivered(_describe(last_error))


def _describe(error):
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error.__class__.__name__}"
    if isinstance(error, http.client.HTTPException):
        return f"not an HTTP answer ({error.__class__.__name__})"
    return f"connection failed ({error.__class__.__name__}: {error})"[:200]
