"""Every call to the model provider, through one ``requests.Session`` built from config (AI_*).

Any server speaking OpenAI's ``/chat/completions`` will do: OpenAI, OpenRouter, vLLM, Ollama.
At most AI_MAX_CONCURRENT_CALLS calls (a stream counts until it is closed) run at once per
process: a slow provider cannot take every request thread.
Failures leave this module as domain errors: 504 when the provider did not answer in time, 502
for anything else (unreachable, an error status, an answer we cannot read).
"""
import contextlib
import json
import logging
from dataclasses import dataclass

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from saas.core.bulkhead import bulkhead
from saas.core.errors import BadGateway, GatewayTimeout

log = logging.getLogger(__name__)

# Provider answers worth another try: overload and passing gateway trouble.
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Statuses caused by the request itself (unknown model, prompt too long): their message helps.
CLIENT_STATUSES = (400, 404, 413, 422)


class ProviderError(BadGateway):
    message = "The model provider failed to answer; try again shortly."


class ProviderTimeout(GatewayTimeout):
    message = "The model provider did not answer in time; try again shortly."


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Completion:
    id: str | None
    model: str
    content: str
    finish_reason: str | None
    usage: Usage | None


def provider_session():
    """The app's session to the provider, built on first use from AI_* settings.

    One per app, so a worker's threads share its keep-alive connections (urllib3's pool is
    thread-safe; the session's cookie jar is never used by these APIs).
    """
    session = current_app.extensions.get("ai_provider_session")
    if session is None:
        config = current_app.config
        retries = config["AI_MAX_RETRIES"]
        # Only failures before the provider starts working are retried: a read timeout may
        # mean it is still generating, and a second try would be billed twice.
        retry = Retry(
            total=retries, connect=retries, read=0, status=retries, other=0,
            status_forcelist=RETRY_STATUSES, allowed_methods=None, backoff_factor=0.5,
            respect_retry_after_header=False, raise_on_status=False,
        )
        session = requests.Session()
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        if config["AI_API_KEY"]:
            session.headers["Authorization"] = f"Bearer {config['AI_API_KEY']}"
        current_app.extensions["ai_provider_session"] = session
    return session


@contextlib.contextmanager
def translated_provider_errors():
    try:
        yield
    except requests.Timeout as error:
        log.warning("model provider timed out: %s", error.__class__.__name__)
        raise ProviderTimeout() from error
    except requests.ConnectionError as error:
        # requests reports a read timeout in the middle of a streamed body as a ConnectionError.
        if "timed out" in str(error).lower():
            log.warning("model provider timed out while streaming")
            raise ProviderTimeout() from error
        log.warning("model provider unreachable: %s", error.__class__.__name__)
        raise ProviderError("The model provider could not be reached; try again shortly.") from error
    except (requests.RequestException, ValueError, LookupError, TypeError, AttributeError) as error:
        log.error("unreadable answer from the model provider: %r", error)
        raise ProviderError("The model provider sent an answer that could not be read.") from error


def _post(body, *, stream=False):
    config = current_app.config
    response = provider_session().post(
        config["AI_API_BASE"].rstrip("/") + "/chat/completions",
        json=body,
        timeout=config["AI_TIMEOUT"],
        stream=stream,
    )
    if response.status_code >= 400:
        _raise_for_provider_status(response)
    return response


def _raise_for_provider_status(response):
    status = response.status_code
    try:
        detail = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = None
    finally:
        response.close()
    log.error("model provider answered %s: %s", status, detail)
    if status in (401, 403):
        if not current_app.config["AI_API_KEY"]:
            raise ProviderError(f"The model provider refused the request ({status}): AI_API_KEY is not set.")
        raise ProviderError(f"The model provider refused our credentials ({status}): check AI_API_KEY.")
    if status in CLIENT_STATUSES and detail:
        raise ProviderError(f"The model provider refused the request ({status}): {str(detail)[:500]}")
    raise ProviderError(f"The model provider answered with an error ({status}); try again shortly.")


def _usage(raw):
    if not raw:
        return None
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


def chat_completion(messages, *, model, max_tokens):
    """One completion for ``messages``, with the token usage the provider reports."""
    with bulkhead("ai").slot(), translated_provider_errors():
        data = _post({"model": model, "messages": messages, "max_tokens": max_tokens}).json()
        choice = data["choices"][0]
        return Completion(
            id=data.get("id"),
            model=data.get("model") or model,
            content=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            usage=_usage(data.get("usage")),
        )


def open_chat_stream(messages, *, model, max_tokens):
    """Start a streamed completion; errors before the first token are raised here."""
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    slots = bulkhead("ai")
    slots.enter()  # held until the stream is closed
    try:
        with translated_provider_errors():
            return ChatStream(_post(body, stream=True), model, on_close=slots.leave)
    except BaseException:
        slots.leave()
        raise


class ChatStream:
    """The provider's Server-Sent Events, read as they arrive.

    Iterating yields the text pieces; afterwards ``usage`` holds the final usage chunk (None
    if the provider sent none), and ``model`` and ``finish_reason`` what it said.
    """

    def __init__(self, response, model, on_close=None):
        self._response = response
        self._on_close = on_close
        self.model = model
        self.usage = None
        self.finish_reason = None

    def __iter__(self):
        with translated_provider_errors():
            for line in _lines_as_they_arrive(self._response.raw):
                if not line.startswith(b"data:"):
                    continue
                data = line[len(b"data:"):].strip()
                if data == b"[DONE]":
                    return
                chunk = json.loads(data)
                if chunk.get("error"):
                    log.error("model provider failed mid-stream: %s", chunk["error"])
                    raise ProviderError("The model provider failed in the middle of its answer.")
                self.model = chunk.get("model") or self.model
                self.usage = _usage(chunk.get("usage")) or self.usage
                for choice in chunk.get("choices") or ():
                    self.finish_reason = choice.get("finish_reason") or self.finish_reason
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece

    def close(self):
        try:
            self._response.close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


def _lines_as_they_arrive(raw):
    """The lines of a streamed body, each handed over as soon as it is complete, whatever the
    framing: chunked, or (as some proxies and self-hosted servers send it) ended by closing
    the connection, where requests' ``iter_lines`` would wait for the end of the whole body."""
    pending = b""
    while data := raw.read1(65536):
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")
