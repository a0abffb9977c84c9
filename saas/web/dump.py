"""Response bodies dumped by marshmallow's own fields, without its per-field plumbing.

``Schema.dump`` reaches each field's conversion (``Field._serialize``) through
``Field.serialize``, ``Field.get_value``, ``Schema.get_attribute`` and ``utils.get_value``: for
``GET /users/me`` that plumbing cost more than the conversions it leads to (bench/RESULTS.md).
``fast_dump(schema)`` works out once, for a schema that uses none of what the plumbing is there
for (dump hooks, overridden accessors, fields that read no attribute), which attribute each field
reads and its default, and then calls each field's own ``_serialize`` on the value, as
``Field.serialize`` does. An object that answers ``obj[key]`` (a dict) and any schema it cannot
serve are dumped by marshmallow itself. tests/test_dump.py compares both on every response schema
of the API.
"""
import marshmallow as ma
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import missing


# Every schema given a fast dump (the API's response schemas: built once, at import): for the tests.
COMPILED = []


def fast_dump(schema):
    """A function doing ``schema.dump(obj)``, or None when ``schema`` needs marshmallow's own."""
    cls = type(schema)
    if (schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP] or cls.dump is not ma.Schema.dump
            or cls._serialize is not ma.Schema._serialize or cls.get_attribute is not ma.Schema.get_attribute
            or schema.dict_class is not dict):
        return None
    plan = []
    for name, field in schema.dump_fields.items():
        kind = type(field)
        if kind.serialize is not ma.fields.Field.serialize or kind.get_value is not ma.fields.Field.get_value \
                or not field._CHECK_ATTRIBUTE:
            return None
        attribute = field.attribute if field.attribute is not None else name
        key = field.data_key if field.data_key is not None else name
        plan.append((key, name, attribute, tuple(attribute.split(".")), field.dump_default, field._serialize))
    dump = schema.dump  # marshmallow's, for what the plan does not cover

    def dump_one(obj):
        if hasattr(obj, "__getitem__"):
            return dump(obj, many=False)
        result = {}
        for key, name, attribute, path, default, serialize in plan:
            value = obj
            for part in path:
                if hasattr(value, "__getitem__"):  # a mapping on the way: marshmallow's lookup
                    value = ma.utils.get_value(obj, attribute, missing)
                    break
                value = getattr(value, part, missing)
            if value is missing:
                value = default() if callable(default) else default
                if value is missing:
                    continue
            result[key] = serialize(value, name, obj)
        return result

    def dump_fast(obj, *, many=None):
        if (many if many is not None else schema.many) and obj is not None:
            return [dump_one(item) for item in obj]
        return dump_one(obj)

    dump_fast.marshmallow_dump = dump
    COMPILED.append(schema)
    return dump_fast
