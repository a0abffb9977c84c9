"""JSON log lines on stdout, the same shape from the app, gunicorn and the RQ worker."""
import logging
import sys

from pythonjsonlogger.orjson import OrjsonFormatter

JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED_FIELDS = {"asctime": "time", "levelname": "level", "name": "logger"}


FORMATTER_CLASS = "pythonjsonlogger.orjson.OrjsonFormatter"  # orjson: the cheapest JSON encoder


def json_formatter():
    return OrjsonFormatter(JSON_FORMAT, rename_fields=RENAMED_FIELDS)


def configure_json_logging(level="INFO", filters=()):
    """Route the root logger to stdout as JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    for log_filter in filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces its plugins at import; that is noise in a service's log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
