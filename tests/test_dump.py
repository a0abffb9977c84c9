"""saas.web.dump: every response schema given a fast dump answers as marshmallow's own dump, for
values of every kind its fields take, values they refuse, absent attributes, ``None`` on the way
along a dotted attribute, mappings, and lists (``many``)."""
import datetime
import itertools
from types import SimpleNamespace

import marshmallow as ma
import pytest

import saas  # noqa: F401  (the blueprints, and so the response schemas, are built at import)
from saas.web.dump import COMPILED

ABSENT = object()
WHEN = datetime.datetime(2026, 12, 7, 16, 0, 1, 250, tzinfo=datetime.timezone.utc)
VALUES = {
    ma.fields.String: ["text", "", "é\u2028", 5],
    ma.fields.Integer: [0, 7, 2**40, "12", True, "x"],
    ma.fields.Number: [1.5, 3, "2.5"],
    ma.fields.Boolean: [True, False, "yes", 1, 0, "maybe"],
    ma.fields.DateTime: [WHEN, WHEN.replace(tzinfo=None), "not a date"],
    ma.fields.List: [[], ["a", 1], ("b",)],
    ma.fields.Dict: [{}, {"a": 1}],
}


def values_for(field):
    for kind, values in VALUES.items():
        if isinstance(field, kind):
            return [None, ABSENT, *values]
    return [None, ABSENT]


def build(schema, chosen, mapping=False):
    """An object whose attributes (dotted ones as nested objects) hold ``chosen``."""
    root = {}
    for (name, field), value in zip(schema.dump_fields.items(), chosen):
        if value is ABSENT:
            continue
        *parents, last = (field.attribute or name).split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[last] = value

    def objects(node):
        if mapping:
            return node
        return SimpleNamespace(**{key: objects(value) if isinstance(value, dict) and key not in DICT_FIELDS else value
                                  for key, value in node.items()})

    DICT_FIELDS = {name for name, field in schema.dump_fields.items() if isinstance(field, ma.fields.Dict)}
    return objects(root)


def outcome(dump, obj, **kwargs):
    try:
        return "ok", dump(obj, **kwargs)
    except Exception as error:  # the same refusal, or the test fails
        return "error", type(error)


def cases(schema):
    fields = list(schema.dump_fields.values())
    columns = [values_for(field) for field in fields]
    # Every value of every field at least once, next to every other field's values in turn.
    for index in range(max(len(column) for column in columns)):
        yield [column[index % len(column)] for column in columns]
    yield [None] * len(fields)
    yield [ABSENT] * len(fields)


def test_the_api_has_fast_dumps():
    names = {type(schema).__name__ for schema in COMPILED}
    assert {"UserSchema", "AdminUserDetailSchema"} <= names, names


@pytest.mark.parametrize("schema", COMPILED, ids=lambda schema: type(schema).__name__)
def test_a_fast_dump_answers_as_marshmallow(schema):
    fast, theirs = schema.dump, schema.dump.marshmallow_dump
    assert fast is not theirs
    checked = 0
    for chosen in cases(schema):
        for mapping in (False, True):
            obj = build(schema, chosen, mapping=mapping)
            assert outcome(fast, obj) == outcome(theirs, obj), (chosen, mapping)
            assert outcome(fast, [obj, obj], many=True) == outcome(theirs, [obj, obj], many=True)
            checked += 1
    assert outcome(fast, None) == outcome(theirs, None)
    assert checked >= 4


def test_a_dotted_attribute_through_none_is_absent():
    from saas.users.schemas import UserSchema

    [schema] = [schema for schema in COMPILED if type(schema) is UserSchema][:1]
    user = SimpleNamespace(id=1, email="a@example.com", full_name=None, is_active=True, is_superuser=False,
                           email_verified=True, mfa_enabled=False, has_password=True, created_at=WHEN,
                           updated_at=None, personal_org=None)
    assert schema.dump(user) == schema.dump.marshmallow_dump(user)
    assert "plan" not in schema.dump(user) and "stripe_customer_id" not in schema.dump(user)
