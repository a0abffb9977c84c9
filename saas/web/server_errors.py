"""gunicorn's own error answers in the app's JSON envelope.

gunicorn answers a request it cannot parse (a malformed line, too many headers, a bad chunk)
itself, before the app sees it, with an HTML page. ``gunicorn.conf.py`` puts ``write_error``
below in its place, so a client gets the same envelope whoever refused the request.
"""
import json

from gunicorn import util

from saas.core.errors import envelope


def write_error(sock, status_int, reason, mesg):
    """What gunicorn's ``util.write_error`` writes, as JSON; the connection is then closed."""
    body = json.dumps(envelope(status_int, mesg or None)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def install():
    util.write_error = write_error
