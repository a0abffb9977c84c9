"""Reading JSON bodies so that any body that cannot be parsed is a 400, never a 500.

Python's parser raises RecursionError for deeply nested arrays and ValueError for an integer
longer than 4300 digits; Flask only expects ValueError and webargs only JSONDecodeError.
"""
import json

from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request


class NotParseable(json.JSONDecodeError):
    """A body the JSON parser gave up on for a reason other than its syntax."""

    def __init__(self, error):
        # A non-empty doc: webargs reads an empty one as "no body at all".
        super().__init__(f"{error.__class__.__name__}: the body cannot be parsed", "(body)", 0)


def loads(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as error:  # too deeply nested; an absurdly long number
        raise NotParseable(error) from None


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON (``request.get_json()``), with every unparseable body a ValueError (-> 400)."""

    def loads(self, s, **kwargs):
        return loads(s)


class ArgumentsParser(FlaskParser):
    """webargs' parser for flask-smorest's ``@blp.arguments``, with the same guarantee."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            return loads(data.decode("utf-8") if isinstance(data, bytes) else data)
        except UnicodeDecodeError as error:
            return self._handle_invalid_json_error(error, req)
