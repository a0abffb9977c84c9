"""A small fake of an OpenAI-compatible model provider for tests.

The app's provider client (``saas.ai.provider``, plain ``requests``) is pointed at this server
through ``AI_API_BASE``, so request encoding, retries, timeouts and streaming are all exercised
for real; only the network peer is fake.

``POST /v1/chat/completions`` answers with ``reply`` split into word pieces, one per token:
as one JSON completion, or with ``"stream": true`` as Server-Sent Events (``data: {chunk}``
lines, a final usage chunk when ``stream_options.include_usage`` is set, then
``data: [DONE]``), sent chunked over HTTP/1.1 as real providers do. Usage is deterministic:
a prompt token per word of the messages, a completion token per piece.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
from typing import NamedTuple

from werkzeug.wrappers import Request, Response

from tests.fake_server import LoopbackServer, QuietRequestHandler

API_KEY = "sk-fake-openai-test-key"
DEFAULT_REPLY = "Hello from the fake model, one token at a time."


class RecordedRequest(NamedTuple):
    method: str
    path: str
    body: dict | None
    headers: dict


class _StreamingRequestHandler(QuietRequestHandler):
    # HTTP/1.1 makes werkzeug send a body of unknown length chunked, flushing every chunk.
    protocol_version = "HTTP/1.1"


def pieces_of(text: str) -> list[str]:
    """The reply as the model's tokens: each word with the space before it."""
    return re.findall(r"\s*\S+", text)


def prompt_tokens_of(messages) -> int:
    return sum(len(str(message.get("content", "")).split()) for message in messages)


class FakeOpenAI(LoopbackServer):
    """Fake provider server; see the module docstring.

    ``mode`` simulates outages: "ok"; "down" (500 error); "unavailable" (connection closed
    without an answer); "slow" (wait ``delay`` seconds, then answer); "midway" (a stream that
    sends two pieces and then an error chunk); "malformed" (200 with no choices). ``stream_gate``, when set to a
    ``threading.Event``, holds a stream after its first piece until the event is set, so a
    test can see that the first token reached the client before the answer was complete.
    ``answer_gate``, when set to a ``threading.Event``, holds every answer (once its request is
    recorded) until the event is set, so a test knows the call is in flight while it acts.
    ``models``, when not None, is the set of model names that exist. ``framing`` is how a
    stream's body is delimited: "chunked" (HTTP/1.1 chunks, as most providers send it) or
    "close" (no length, no chunks: the body ends when the connection closes, as some proxies
    and self-hosted servers send it).
    """

    NAME = "fake-openai"
    URL_SUFFIX = "/v1"
    REQUEST_HANDLER = _StreamingRequestHandler

    def __init__(self):
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self.reset()

    def reset(self) -> None:
        """Forget recorded requests; every setting back to its default."""
        with self._lock:
            super().reset()
            self.reply = DEFAULT_REPLY
            self.models = None
            self.stream_gate = None
            self.answer_gate = None
            self.framing = "chunked"
            self.requests.clear()

    # -- test helpers --------------------------------------------------------

    def completions(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- WSGI plumbing -------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.path, body, dict(request.headers)))
            generation, mode, gate = self._generation, self.mode, self.answer_gate

        if gate is not None:
            gate.wait(timeout=30)

        self._act_out_outage(environ, mode, generation)
        if mode == "malformed":
            return Response('{"object": "chat.completion", "choices": []}', content_type="application/json")(
                environ, start_response
            )
        if mode == "down":
            return self._error(500, "The server had an error while processing your request.", "server_error")(
                environ, start_response
            )
        return self._answer(request, body, mode)(environ, start_response)

    @staticmethod
    def _send_until_close(environ, chunks):
        """Write the stream straight to the socket, delimited only by closing the connection."""
        connection = environ["werkzeug.socket"]
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for chunk in chunks:
            connection.sendall(chunk.encode("utf-8"))
        connection.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError("FakeOpenAI ended a close-delimited stream")

    @staticmethod
    def _error(status, message, type_, code=None):
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _answer(self, request: Request, body, mode: str) -> Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return self._error(404, f"Unknown request URL: {request.method} {request.path}.", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._error(400, "'messages' and 'model' are required.", "invalid_request_error")
        if self.models is not None and body["model"] not in self.models:
            return self._error(
                404, f"The model `{body['model']}` does not exist.", "invalid_request_error", "model_not_found"
            )

        pieces = pieces_of(self.reply)
        finish_reason = "stop"
        if body.get("max_tokens") is not None and len(pieces) > int(body["max_tokens"]):
            pieces, finish_reason = pieces[: int(body["max_tokens"])], "length"
        usage = {
            "prompt_tokens": prompt_tokens_of(body["messages"]),
            "completion_tokens": len(pieces),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._chunks(completion_id, body["model"], pieces, finish_reason, usage if include_usage else None, mode)
            if self.framing == "close":
                self._send_until_close(request.environ, chunks)
            return Response(chunks, status=200, content_type="text/event-stream")
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces)},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
        }
        return Response(json.dumps(completion), status=200, content_type="application/json")

    def _chunks(self, completion_id, model, pieces, finish_reason, usage, mode):
        def chunk(choices, **extra):
            return "data: " + json.dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": choices,
                    **extra,
                }
            ) + "\n\n"

        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        gate = self.stream_gate
        for number, piece in enumerate(pieces):
            if mode == "midway" and number == 2:
                yield "data: " + json.dumps({"error": {"message": "The model crashed.", "type": "server_error"}}) + "\n\n"
                return
            yield chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            if number == 0 and gate is not None:
                gate.wait(timeout=10)
        yield chunk([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
        if usage is not None:
            yield chunk([], usage=usage)
        yield "data: [DONE]\n\n"
