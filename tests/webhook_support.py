"""Receivers for the webhook tests: a real HTTP or HTTPS server on loopback that records what it
is sent and answers as told, a local certificate authority for its certificate, and a receiver
that never finishes its answer."""
import datetime
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server

from tests.fake_server import QuietRequestHandler


class LocalCA:
    """A certificate authority made for the test (P-256, valid a day) and one server certificate
    it signed for ``names``. ``ca_file`` is what SSL_CERT_FILE points the worker at."""

    def __init__(self, directory, names):
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "saas test CA")])
        ca_cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self._cert_file, self._key_file = directory / "server.pem", directory / "server.key"
        self._cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))

    def server_context(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert_file, self._key_file)
        return context


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict  # lower-case names
    body: bytes


class Receiver:
    """A webhook receiver on 127.0.0.1: HTTPS with ``tls`` (a server SSLContext), else HTTP.
    Each request is recorded; it is answered with the next of ``answers`` ((status, body,
    headers)), then with ``default``."""

    def __init__(self, tls=None):
        self._tls = tls
        self._changed = threading.Condition()
        self.requests = []
        self.answers = []
        self.default = (200, b"ok", {})
        self.port = None

    def start(self):
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietRequestHandler,
                                   ssl_context=self._tls)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, host="127.0.0.1", path="/hooks/saas"):
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}{path}"

    def answer(self, *answers):
        """Answer the next requests with these statuses (or (status, body, headers) triples)."""
        self.answers.extend(answer if isinstance(answer, tuple) else (answer, b"", {}) for answer in answers)

    def _wsgi(self, environ, start_response):
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._changed:
            self.requests.append(Received(environ["PATH_INFO"], headers, body))
            status, answer, extra = self.answers.pop(0) if self.answers else self.default
            self._changed.notify_all()
        start_response(f"{status} Answer", [("Content-Type", "text/plain"), *extra.items()])
        return [answer]

    def wait_for(self, count, timeout=30):
        """The first ``count`` requests, once they have come."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise AssertionError(f"the receiver got {len(self.requests)} requests, not {count}, in {timeout} s")
            return self.requests[:count]


class TricklingReceiver:
    """Takes the connection and the request, then answers a byte every 0.2 s, forever: its
    status line never ends. Counts the connections it took."""

    def __init__(self):
        self.connections = 0
        self._stopping = threading.Event()

    def start(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def url(self, path="/slow"):
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self):
        while not self._stopping.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection):
        with connection:
            try:
                connection.recv(65536)
                for byte in iter(lambda: b"H", None):
                    if self._stopping.is_set():
                        return
                    connection.sendall(byte)
                    time.sleep(0.2)
            except OSError:
                return

    def stop(self):
        self._stopping.set()
        self._socket.close()
