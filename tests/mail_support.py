"""A real SMTP server for the tests (aiosmtpd, in this process), and reading what it received."""
import email
import email.policy
import re
import socket
import threading
import time

from aiosmtpd.controller import Controller

LINK = re.compile(r"(https?://\S+\?token=([A-Za-z0-9_.\-]+))")


class Received:
    """One message as the server got it."""

    def __init__(self, mail_from, rcpt_tos, raw):
        self.mail_from, self.rcpt_tos = mail_from, rcpt_tos
        self.message = email.message_from_bytes(raw, policy=email.policy.default)

    @property
    def to(self):
        return str(self.message["To"])

    @property
    def subject(self):
        return str(self.message["Subject"])

    @property
    def text(self):
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self):
        return self.message.get_body(("html",)).get_content()

    @property
    def link(self):
        """The link of the plain-text part (the HTML part must carry the same)."""
        found = LINK.search(self.text)
        assert found, self.text
        return found.group(1)

    @property
    def token(self):
        return LINK.search(self.text).group(2)


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        self.sink.add(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 2.0.0 Ok: queued as TEST"


class _Controller(Controller):
    """aiosmtpd's, listening beside the port's reservation (SO_REUSEPORT)."""

    def _create_server(self):
        return self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context, reuse_port=True
        )


class SmtpServer:
    """aiosmtpd on a free loopback port; ``stop()`` and ``start()`` keep the port, so a test can
    take the server away and bring it back. No STARTTLS: apps under test set SMTP_STARTTLS=false.

    The port is held from the start by a socket bound here and never listened on: while the
    server is stopped (or not started yet) connections to it are refused, and no other process
    can take it meanwhile; the server listens beside that socket (both with SO_REUSEPORT)."""

    def __init__(self):
        self._reservation = socket.socket()
        self._reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._reservation.bind(("127.0.0.1", 0))
        self.port = self._reservation.getsockname()[1]
        self.messages = []
        self._lock = threading.Lock()
        self._controller = None

    @property
    def settings(self):
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port), "SMTP_STARTTLS": "false"}

    def add(self, received):
        with self._lock:
            self.messages.append(received)

    def start(self):
        self._controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def close(self):
        """Stop for good, and give the port back."""
        self.stop()
        self._reservation.close()

    def to(self, address):
        with self._lock:
            return [message for message in self.messages if message.to == address]

    def wait_for(self, address, count=1, timeout=10):
        """The messages to ``address`` once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.to(address)
            if len(received) >= count:
                return received
            time.sleep(0.05)
        raise AssertionError(f"{len(self.to(address))} messages to {address} after {timeout} s, not {count}")
