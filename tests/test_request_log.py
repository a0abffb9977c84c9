"""The edge's line per request is written without a LogRecord (saas.core.logging.JsonLine) only
while the record would have gone to the JSON handler alone; the line is then the one the handler
would have written, and any other setup (a handler, a filter, another formatter, an error
tracker's hook on the logging module) gets the record itself."""
import io
import json
import logging
import re
import sys
import time

import pytest

import saas.core.logging

from saas.core.logging import JsonLine, JsonLinesHandler, configure_json_logging
from saas.web.edge import RequestIdFilter, log as request_log, request_id_var

UNHOOKED = saas.core.logging._CALL_HANDLERS
FIELDS = {"method": "GET", "path": "/api/v1/users/me", "status": 200, "duration_ms": 1.25, "user_id": "7",
          "remote_addr": "203.0.113.9", "request_id": "trace-1"}


@pytest.fixture
def stdout(monkeypatch):
    """What the JSON handler writes, with the root logger and ``saas.request`` restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, request_log.handlers[:], request_log.filters[:], request_log.propagate
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    # The Sentry test (test_observability.py) leaves its hook on the logging module.
    monkeypatch.setattr(logging.Logger, "callHandlers", UNHOOKED)
    configure_json_logging("INFO", filters=[RequestIdFilter()])
    yield stream
    root.handlers[:], level, request_log.handlers[:], request_log.filters[:], request_log.propagate = saved
    root.setLevel(level)


def json_handler_alone():
    """pytest adds its own handlers to the root logger around each test's body: taken out."""
    root = logging.getLogger()
    root.handlers[:] = [handler for handler in root.handlers if type(handler) is JsonLinesHandler]


def write(fields=FIELDS):
    JsonLine(request_log, "request", filter_types=(RequestIdFilter,)).write(dict(fields))


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def written_both_ways(stream):
    json_handler_alone()
    token = request_id_var.set("trace-1")
    try:
        write()
        request_log.info("request", extra={key: value for key, value in FIELDS.items() if key != "request_id"})
    finally:
        request_id_var.reset(token)
    return lines(stream)


def test_the_line_is_the_one_the_handler_writes(stdout):
    fast, logged = written_both_ways(stdout)
    assert list(fast) == list(logged)  # the same fields in the same order
    assert {**fast, "time": None} == {**logged, "time": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", fast["time"])
    assert fast["time"][:16] == logged["time"][:16]
    assert fast["logger"] == "saas.request" and fast["level"] == "INFO" and fast["message"] == "request"


class Collecting(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.parametrize("where", ["saas.request", "saas", "root"])
def test_another_handler_gets_the_record(stdout, where):
    json_handler_alone()
    collecting = Collecting()
    logger = logging.getLogger(None if where == "root" else where)
    logger.addHandler(collecting)
    try:
        write()
    finally:
        logger.removeHandler(collecting)
    [record] = collecting.records
    assert record.getMessage() == "request" and record.status == 200 and record.request_id == "trace-1"
    assert len(lines(stdout)) == 1  # and the JSON handler wrote the line once


def test_a_filter_on_the_logger_is_applied(stdout):
    json_handler_alone()
    request_log.addFilter(lambda record: record.status != 200)
    write()
    write({**FIELDS, "status": 404})
    assert [line["status"] for line in lines(stdout)] == [404]


def test_another_formatter_formats_it(stdout):
    json_handler_alone()
    logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(levelname)s %(message)s %(status)s"))
    write()
    assert stdout.getvalue() == "INFO request 200\n"


def test_a_handler_filter_of_another_kind_sees_the_record(stdout):
    json_handler_alone()
    seen = []
    logging.getLogger().handlers[0].addFilter(lambda record: seen.append(record.path) or True)
    write()
    assert seen == ["/api/v1/users/me"] and len(lines(stdout)) == 1


def test_a_hook_on_the_logging_module_sees_the_record(stdout, monkeypatch):
    """Error trackers (Sentry's logging integration) wrap ``Logger.callHandlers``."""
    json_handler_alone()
    seen = []
    original = logging.Logger.callHandlers

    def hooked(logger, record):
        seen.append(record.getMessage())
        return original(logger, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", hooked)
    write()
    assert seen == ["request"] and len(lines(stdout)) == 1


def test_below_info_nothing_is_written(stdout):
    json_handler_alone()
    request_log.setLevel(logging.WARNING)
    try:
        write()
    finally:
        request_log.setLevel(logging.NOTSET)
    assert stdout.getvalue() == ""


def test_a_stream_that_fails_is_reported_and_the_caller_goes_on(stdout, capsys, monkeypatch):
    json_handler_alone()
    stdout.close()  # writing to it raises ValueError, as a closed pipe would raise
    write()
    assert "ValueError" in capsys.readouterr().err  # logging's own report of a failed emit


def test_with_the_json_handler_alone_no_record_is_made(stdout, monkeypatch):
    json_handler_alone()
    made = []
    make_record = logging.Logger.makeRecord
    monkeypatch.setattr(logging.Logger, "makeRecord", lambda *args, **kwargs: made.append(1) or make_record(*args, **kwargs))
    write()
    assert made == [] and len(lines(stdout)) == 1
    request_log.info("request", extra={"status": 200})
    assert made == [1]  # (the count sees records that are made)


def test_a_formatter_that_keeps_utc_times_formats_it(stdout, monkeypatch):
    """``logging.Formatter.converter = time.gmtime`` is how a program logs in UTC."""
    json_handler_alone()
    monkeypatch.setattr(logging.Formatter, "converter", time.gmtime)
    made = []
    make_record = logging.Logger.makeRecord
    monkeypatch.setattr(logging.Logger, "makeRecord", lambda *args, **kwargs: made.append(1) or make_record(*args, **kwargs))
    write()
    assert made == [1] and len(lines(stdout)) == 1
