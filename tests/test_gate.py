"""The auth gate, on the embedded default (SQLite, no Redis): what it checks, when, and how it
keys the rate limits. No server needed, but where the database answers, on PostgreSQL too."""
import re

import pytest
from werkzeug.routing import IntegerConverter

from tests.helpers import bearer, login, register, sign_up

ME = "/api/v1/users/me"
CHAT = "/api/v1/ai/chat"
API_KEYS = "/api/v1/api-keys"


@pytest.fixture
def token(embedded_client):
    return sign_up(embedded_client)


def _key(client, token):
    response = client.post(API_KEYS, json={"name": "script"}, headers=bearer(token))
    assert response.status_code == 201
    return response.get_json()["key"]


def test_a_caller_without_credentials_gets_401_before_the_body_is_read(embedded_client):
    response = embedded_client.post(CHAT, data="{not json", content_type="application/json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_bad_body_from_a_known_caller_is_then_a_422(embedded_client, token):
    response = embedded_client.post(CHAT, json={"messages": "not a list"}, headers=bearer(token))
    assert response.status_code == 422


def test_an_api_key_on_a_session_only_endpoint_is_refused_and_says_why(embedded_client, token):
    key = _key(embedded_client, token)
    response = embedded_client.get(API_KEYS, headers={"X-API-Key": key})
    assert response.status_code == 401
    assert "login session" in response.get_json()["message"]


def test_with_a_key_and_a_session_token_the_key_wins_where_keys_are_accepted(embedded_client, token):
    key = _key(embedded_client, token)
    other = sign_up(embedded_client, "other@example.com")
    me = embedded_client.get(ME, headers={"X-API-Key": key, **bearer(other)}).get_json()
    assert me["email"] == "user@example.com"
    # ...and a session-only endpoint uses the token.
    assert embedded_client.get(API_KEYS, headers={"X-API-Key": key, **bearer(other)}).get_json() == []


def test_token_errors_never_show_library_internals(embedded_client):
    for token in ("not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.x"):
        message = embedded_client.get(ME, headers=bearer(token)).get_json()["message"]
        assert message == "The token is invalid."


@pytest.fixture
def limited_client(embedded_with):
    return embedded_with(RATELIMIT_ENABLED="true", RATELIMIT_DEFAULT="3 per minute")


def test_the_default_limit_counts_per_user_not_per_address(limited_client):
    first, second = sign_up(limited_client, "one@example.com"), sign_up(limited_client, "two@example.com")
    assert [limited_client.get(ME, headers=bearer(first)).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert limited_client.get(ME, headers=bearer(second)).status_code == 200


def test_the_default_limit_counts_per_owner_of_the_api_keys(limited_client):
    token = sign_up(limited_client)
    one, two = _key(limited_client, token), _key(limited_client, token)
    assert [limited_client.get(ME, headers={"X-API-Key": one}).status_code for _ in range(3)] == [200, 200, 200]
    assert limited_client.get(ME, headers={"X-API-Key": two}).status_code == 429
    assert limited_client.get(ME, headers=bearer(token)).status_code == 429


def test_failed_credentials_count_against_the_address(limited_client):
    statuses = [limited_client.get(ME, headers=bearer("forged")).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def _gate_connection_statements():
    """The prepared statements of the gate's connection: the one this thread keeps for its
    lookups, or (when the gate runs them through SQLAlchemy) the pool's one."""
    import sqlalchemy as sa

    from saas.core.database import _autocommit_engine, _held

    if _held.connection is not None and _held.pool is _autocommit_engine().pool:
        with _held.connection.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_prepared_statements")
            return [name for (name,) in cursor.fetchall()]
    with _autocommit_engine().connect() as connection:
        return connection.execute(sa.text("SELECT name FROM pg_prepared_statements")).scalars().all()


@pytest.mark.parametrize("setting, prepared", [("true", True), ("false", False)])
def test_the_gates_lookups_are_prepared_on_their_connection_unless_turned_off(app_with, setting, prepared):
    """PostgreSQL plans the gate's two lookups once per connection; DB_PREPARED_STATEMENTS=false
    (PgBouncer in transaction mode) turns that off. Both answer the same."""
    client = app_with(DB_PREPARED_STATEMENTS=setting)
    token = sign_up(client)
    key = _key(client, token)
    for _ in range(3):
        assert client.get(ME, headers=bearer(token)).get_json()["email"] == "user@example.com"
        assert client.get(ME, headers={"X-API-Key": key}).get_json()["email"] == "user@example.com"
    expected = {"saas_user_of_open_session", "saas_key_and_owner"} if prepared else set()
    assert set(_gate_connection_statements()) == expected


def _prepare_on_pooled_connections(count, token):
    """``count`` connections in the gate's pool, each having prepared the session lookup."""
    from saas.auth.service import _USER_OF_OPEN_SESSION, _decode
    from saas.core.database import _autocommit_engine, _execute
    from saas.core.time import utcnow

    session_id = _decode(token, "access")["sid"]
    connections = [_autocommit_engine().connect() for _ in range(count)]
    for connection in connections:
        assert _execute(connection, _USER_OF_OPEN_SESSION, {"session_id": session_id, "now": utcnow()}).first()
    return connections


@pytest.mark.parametrize("staling", ["DISCARD ALL", "ALTER TABLE users ALTER COLUMN full_name TYPE text"])
def test_prepared_lookups_gone_stale_on_every_pooled_connection_are_planned_again(app_with, staling):
    """A pooler's reset (DISCARD ALL) drops every connection's prepared statements; a migration
    that changes the type of a column the lookup returns makes PostgreSQL refuse every old plan.
    Each connection plans the lookup again at its next use: no request fails."""
    import sqlalchemy as sa

    from saas.extensions import db

    client = app_with()
    token = sign_up(client)
    db.session.remove()  # no transaction of the test's may hold the users table
    connections = _prepare_on_pooled_connections(3, token)
    try:
        if staling == "DISCARD ALL":  # as a pooler does on each connection it hands back
            for connection in connections:
                connection.execute(sa.text(staling))
        for connection in connections:
            connection.close()
        if staling.startswith("ALTER"):  # a migration, from another process
            with db.engine.begin() as connection:
                connection.execute(sa.text(staling))
        for _ in range(6):  # every pooled connection serves at least one
            response = client.get(ME, headers=bearer(token))
            assert response.status_code == 200, response.get_json()
            assert response.get_json()["email"] == "user@example.com"
    finally:
        if staling.startswith("ALTER"):
            db.session.remove()
            with db.engine.begin() as connection:
                connection.execute(sa.text("ALTER TABLE users ALTER COLUMN full_name TYPE varchar"))


def test_a_statement_this_process_did_not_record_is_replaced(app_with):
    """A connection that holds a statement of the lookup's name unknown to this process (42P05
    on PREPARE) drops it and prepares the lookup."""
    import sqlalchemy as sa

    from saas.core.database import _autocommit_engine

    client = app_with()
    token = sign_up(client)
    with _autocommit_engine().connect() as connection:
        connection.info.pop("prepared", None)
        connection.execute(sa.text("DEALLOCATE ALL"))
        connection.execute(sa.text("PREPARE saas_user_of_open_session AS SELECT 1"))
    response = client.get(ME, headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["email"] == "user@example.com"


def test_the_drivers_own_cursor_answers_the_row_sqlalchemy_answers(app_with):
    """``read_row`` runs a prepared lookup on the driver's cursor when all goes well: the row it
    answers is the one SQLAlchemy's execution answers, conversions of the column types included
    (UTCDateTime's aware datetimes)."""
    from saas.auth.service import _USER_OF_OPEN_SESSION, _decode
    from saas.core.database import _autocommit_engine, _execute, _read_on_the_driver
    from saas.core.time import utcnow

    client = app_with()
    token = sign_up(client)
    params = {"session_id": _decode(token, "access")["sid"], "now": utcnow()}
    with _autocommit_engine().connect() as connection:
        expected = dict(_execute(connection, _USER_OF_OPEN_SESSION, params).mappings().one())
    answered = _read_on_the_driver(_autocommit_engine(), _USER_OF_OPEN_SESSION, params)
    assert answered == expected and answered["created_at"].tzinfo is not None
    assert _read_on_the_driver(_autocommit_engine(), _USER_OF_OPEN_SESSION, {**params, "session_id": "none"}) is None


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.services), "sqlite"])
def client_on_each_database(request):
    if request.param == "postgresql":
        return request.getfixturevalue("app_with")(REDIS_URL="")
    return request.getfixturevalue("embedded_with")()


# Past PostgreSQL's integer, past SQLite's (a 500 there), and past what int() reads at all.
IDS_PAST_EVERY_ID = ("2147483648", "9223372036854775808", "9" * 5000)
# A valid body for each route with an id that reads one.
BODIES = {
    ("PATCH", "/api/v1/orgs/<int:org_id>"): {"name": "Renamed"},
    ("PATCH", "/api/v1/orgs/<int:org_id>/members/<int:user_id>"): {"role": "member"},
    ("POST", "/api/v1/orgs/<int:org_id>/invitations"): {"email": "friend@example.com", "role": "member"},
    ("POST", "/api/v1/orgs/<int:org_id>/api-keys"): {"name": "script"},
    ("POST", "/api/v1/orgs/<int:org_id>/billing/checkout"): {"plan": "team"},
    ("PATCH", "/api/v1/admin/users/<int:user_id>"): {"is_active": True},
}


def _requests_with_ids(app, **ids):
    """``(method, path, body)`` for every route with an integer id, each id taken from ``ids``
    by name (``default`` for the others)."""
    for rule in app.url_map.iter_rules():
        if not any(isinstance(converter, IntegerConverter) for converter in rule._converters.values()):
            continue
        path = re.sub(r"<int:(\w+)>", lambda match: str(ids.get(match[1], ids["default"])), rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path, BODIES.get((method, rule.rule))


def test_an_id_past_every_id_is_a_404_after_the_401_on_both_databases(client_on_each_database):
    client = client_on_each_database
    app = client.application
    register(client, "root@example.com")
    assert app.test_cli_runner().invoke(args=["users", "make-superuser", "root@example.com"]).exit_code == 0
    root, user = login(client, "root@example.com")["access_token"], sign_up(client)
    me = client.get("/api/v1/users/me", headers=bearer(user)).get_json()["id"]
    verified = client.patch(f"/api/v1/admin/users/{me}", json={"email_verified": True}, headers=bearer(root))
    assert verified.status_code == 200  # inviting needs a verified address, checked before the organization
    team = client.post("/api/v1/orgs", json={"name": "Acme"}, headers=bearer(user)).get_json()["id"]
    for huge in IDS_PAST_EVERY_ID:
        for method, path, body in _requests_with_ids(app, default=huge):
            anonymous = client.open(path, method=method, json=body)
            assert anonymous.status_code == 401, (method, path[:80], anonymous.status_code)
            token = root if path.startswith("/api/v1/admin/") else user
            refused = client.open(path, method=method, json=body, headers=bearer(token))
            assert refused.status_code == 404, (method, path[:80], refused.get_json())
        for method, path, body in _requests_with_ids(app, default=huge, org_id=team):  # the team's, then an id
            if path.startswith(f"/api/v1/orgs/{team}/") and path.endswith(huge):
                refused = client.open(path, method=method, json=body, headers=bearer(user))
                assert refused.status_code == 404, (method, path[:80], refused.get_json())
        acting = client.get("/api/v1/usage", headers={**bearer(user), "X-Org-Id": huge})
        assert (acting.status_code, acting.get_json()["message"]) == (404, "No such organization.")
    assert client.get("/api/v1/usage", headers={**bearer(user), "X-Org-Id": f"000{team}"}).status_code == 200
    assert client.get("/api/v1/usage", headers={**bearer(user), "X-Org-Id": "12a"}).status_code == 422


def test_the_callers_rows_wait_complete_for_a_session_a_read_never_opens(app):
    """The gate reads the caller and their personal organization before the request has an ORM
    session and opens none (``GET /users/me`` needs none): until a session is opened they are
    detached, so every column and relationship must be loaded, or the first lazy load would be
    a 500; the first session opened takes them in as its own, with no query."""
    import sqlalchemy as sa

    from saas.auth.service import user_of_access_token
    from saas.extensions import db
    from saas.users.models import User

    token = sign_up(app.test_client())  # each request in an app context of its own, as served
    with app.test_request_context(ME, headers=bearer(token)):
        user, *_ = user_of_access_token(token)
        org = user.personal_org
        assert not db.session.registry.has()
        for instance in (user, org):
            assert sa.inspect(instance).detached and sa.inspect(instance).unloaded == set()
        assert org.personal_owner is user
        assert db.session.get(User, user.id) is user
        assert user in db.session and org in db.session


def test_a_row_built_instance_is_in_the_state_sqlalchemys_own_detaching_leaves(app):
    """``loaded`` sets the identity of an instance holding every column itself instead of
    calling ``make_transient_to_detached`` (a third of its cost on the gate's path): the state
    must be the same one, history, expiry and identity; an instance missing a column still goes
    through SQLAlchemy, which marks the column expired (a silent None otherwise)."""
    import datetime

    from sqlalchemy.orm import make_transient_to_detached
    from sqlalchemy.orm.attributes import instance_state

    from saas.core.database import loaded
    from saas.orgs.models import Organization
    from saas.users.models import User

    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    with app.app_context():  # no session opened: the instances wait, detached
        _compare_with_sqlalchemys(loaded, make_transient_to_detached, instance_state, now, (User, Organization))


def _compare_with_sqlalchemys(loaded, make_transient_to_detached, instance_state, now, classes):
    for cls in classes:
        values = {column.key: (now if "_at" in column.key else 7 if column.key == "id" else None)
                  for column in cls.__mapper__.column_attrs}
        fast = loaded(cls, dict(values))
        reference = cls.__mapper__.class_manager.new_instance()
        reference.__dict__.update(values)
        make_transient_to_detached(reference)
        ours, theirs = instance_state(fast), instance_state(reference)
        assert ours.key == theirs.key == (cls, (7,), None)
        for name in ("committed_state", "expired_attributes", "modified", "expired", "unloaded", "callables"):
            assert getattr(ours, name) == getattr(theirs, name), name
        state_free = lambda state: {k: v for k, v in state.dict.items() if k != "_sa_instance_state"}  # noqa: E731
        assert state_free(ours) == state_free(theirs) == values and ours.detached and theirs.detached

        missing = dict(values)
        del missing["created_at"]
        partial = instance_state(loaded(cls, missing))
        assert partial.key == (cls, (7,), None) and "created_at" in partial.expired_attributes


def _held_backend():
    """The PostgreSQL backend of the connection this thread keeps for its lookups, or None."""
    from saas.core.database import _held

    return None if _held.connection is None else _held.connection.dbapi_connection.info.backend_pid


def test_a_thread_keeps_its_lookup_connection_only_within_the_pools_size(app_with):
    """Each thread keeps the connection of its lookups for its next requests (no checkout and
    check-in a request), counted by the pool as checked out; a thread that would take the pool
    past DB_POOL_SIZE gives its connection back after the lookup, so what threads keep never
    eats the overflow everything else needs."""
    import threading

    from saas.core.database import _autocommit_engine, _held

    client = app_with(DB_POOL_SIZE="1", DB_MAX_OVERFLOW="3")
    token = sign_up(client)
    pool = _autocommit_engine().pool
    answers = [client.get(ME, headers=bearer(token)) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    kept = _held.connection
    assert kept is not None and _held.pool is pool and pool.checkedout() == 1

    seen = {}

    def another_thread():
        with client.application.app_context():
            seen["status"] = client.get(ME, headers=bearer(token)).status_code
            seen["kept"] = _held.connection

    thread = threading.Thread(target=another_thread)
    thread.start()
    thread.join()
    assert seen == {"status": 200, "kept": None}
    assert pool.checkedout() == 1 and _held.connection is kept
    assert client.get(ME, headers=bearer(token)).status_code == 200 and _held.connection is kept


def test_a_kept_connection_goes_back_to_the_pool_for_its_recycling(app_with):
    """A thread keeps a connection no longer than DB_POOL_RECYCLE allows: then it goes back and
    the pool replaces it (a new PostgreSQL backend)."""
    import time

    client = app_with(DB_POOL_RECYCLE="1")
    token = sign_up(client)
    assert client.get(ME, headers=bearer(token)).status_code == 200
    first = _held_backend()
    assert client.get(ME, headers=bearer(token)).status_code == 200 and _held_backend() == first
    time.sleep(1.2)
    assert client.get(ME, headers=bearer(token)).status_code == 200
    assert _held_backend() not in (None, first)


def test_a_kept_connection_the_server_dropped_is_replaced_and_the_request_answered(app_with):
    """PostgreSQL ends the kept connection's backend (a restart, an operator, a failover): the
    next lookup fails on it, lets it go, and is answered on a new one."""
    import sqlalchemy as sa

    from saas.extensions import db

    client = app_with()
    token = sign_up(client)
    assert client.get(ME, headers=bearer(token)).status_code == 200
    dropped = _held_backend()
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped}).scalar()
    db.session.remove()
    response = client.get(ME, headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["email"] == "user@example.com"
    assert client.get(ME, headers=bearer(token)).status_code == 200
    assert _held_backend() not in (None, dropped)


def test_a_forked_child_never_uses_nor_closes_its_parents_kept_connection(app_with):
    """A process forked after its thread kept a connection shares that socket with its parent:
    the child looks up on a connection of its own and leaves the parent's alone (closing it would
    end the parent's session)."""
    import os

    client = app_with()
    token = sign_up(client)
    assert client.get(ME, headers=bearer(token)).status_code == 200
    parents = _held_backend()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            status = client.get(ME, headers=bearer(token)).status_code
            os.write(writer, f"{status} {_held_backend()}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    status, childs = os.read(reader, 100).decode().split()
    os.waitpid(child, 0)
    os.close(reader)
    assert status == "200" and int(childs) != parents
    assert client.get(ME, headers=bearer(token)).status_code == 200 and _held_backend() == parents
