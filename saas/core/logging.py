"""JSON log lines on stdout, the same shape from the app, gunicorn and the RQ worker."""
import logging
import sys
import time

from pythonjsonlogger.orjson import OrjsonFormatter

JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED_FIELDS = {"asctime": "time", "levelname": "level", "name": "logger"}


FORMATTER_CLASS = "pythonjsonlogger.orjson.OrjsonFormatter"  # orjson: the cheapest JSON encoder


def json_formatter():
    return OrjsonFormatter(JSON_FORMAT, rename_fields=RENAMED_FIELDS)


class JsonLinesHandler(logging.StreamHandler):
    """The stream handler ``configure_json_logging`` installs, which remembers how it was set up
    (``JsonLine`` writes for it only while that still holds)."""

    def __init__(self, stream, formatter, filters):
        super().__init__(stream)
        self.setFormatter(formatter)
        for log_filter in filters:
            self.addFilter(log_filter)
        self.configured = (formatter, list(filters))


def configure_json_logging(level="INFO", filters=()):
    """Route the root logger to stdout as JSON."""
    handler = JsonLinesHandler(sys.stdout, json_formatter(), filters)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces its plugins at import; that is noise in a service's log.
    logging.getLogger("alembic").setLevel(logging.WARNING)


_CALL_HANDLERS = logging.Logger.callHandlers


class JsonLine:
    """One INFO line of a logger, with fixed fields, written as the JSON handler would write the
    record ``logger.info(message, extra=fields)`` makes, byte for byte, without making it.

    For the edge's line per request: the record, its filters, the handler's lookups and the
    formatter's generic work cost more than the rest of the line (bench/RESULTS.md). It is taken
    only while the record would go to the ``JsonLinesHandler`` alone, as configured: the logger
    has no filter, neither it nor its ancestors another handler, nothing patched the logging
    module's dispatch (an error tracker's integration does), the handler's formatter and time
    format are unchanged and its filters are those of ``filter_types``, whose fields the caller
    passes; otherwise the record is made and logged
    (tests/test_request_log.py compares both).
    """

    def __init__(self, logger, message, filter_types=()):
        self.logger = logger
        self.message = message
        self.filter_types = tuple(filter_types)
        self._second, self._stamp = None, ""

    def write(self, fields):
        handler = self._handler()
        if handler is None:
            self.logger.info(self.message, extra=fields)
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # formatTime's text, remade once a second
            self._stamp, self._second = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)), second
        line = {"time": "%s,%03d" % (self._stamp, int((now - second) * 1000)), "level": "INFO",
                "logger": self.logger.name, "message": self.message, **fields}
        try:
            text = handler.formatter.serialize_log_record(line) + handler.terminator
            with handler.lock:
                handler.stream.write(text)
                handler.flush()
        except Exception:  # as the handler's emit would: said on stderr, the request unharmed
            handler.handleError(self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, self.message,
                                                       (), None, extra=fields))

    def _handler(self):
        """The JSON handler when it alone would write the logger's INFO record, else None."""
        logger = self.logger
        if logger.filters or not logger.isEnabledFor(logging.INFO) or logging.Logger.callHandlers is not _CALL_HANDLERS:
            return None
        while logger.parent is not None:
            if logger.handlers or not logger.propagate:
                return None
            logger = logger.parent
        if len(logger.handlers) != 1:
            return None
        handler = logger.handlers[0]
        if type(handler) is not JsonLinesHandler or handler.level > logging.INFO:
            return None
        formatter, filters = handler.configured
        if handler.formatter is not formatter or handler.filters != filters:
            return None
        # formatTime's text as ``write`` makes it (the converter and formats are class
        # attributes of logging.Formatter that a program may change: UTC logs set converter).
        if (formatter.converter is not time.localtime or formatter.datefmt is not None
                or formatter.default_time_format != "%Y-%m-%d %H:%M:%S" or formatter.default_msec_format != "%s,%03d"):
            return None
        if not all(isinstance(log_filter, self.filter_types) for log_filter in filters):
            return None
        return handler
