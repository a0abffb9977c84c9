"""The lean floor: what any Flask ``GET /api/v1/users/me`` must pay, and nothing else.

The same work as saas's, written as plainly as it can be: the bearer token's HS256 signature
checked once per token (remembered, like saas's gate), its expiry and type checked on every
request; the same one query as the gate's (the session, its active user and the user's personal
organization), prepared once per connection and run in autocommit through psycopg2 on a
connection per thread; a JSON answer with the user object's fields. With ``RATELIMIT_ENABLED``
(the app's own switch, so both run in the same mode) one fixed-window counter per user in
Redis, ``INCR`` and ``EXPIRE NX`` in one round trip, against ``RATELIMIT_DEFAULT``'s count per
minute; a 429 past it.

No SQLAlchemy, no flask-smorest or marshmallow, no flask-limiter, no CORS, no request log or
metrics: the price of those is what bench/run.py measures as the difference from saas.
"""
import datetime
import functools
import os
import threading
import time

import jwt
import psycopg2
import redis
from flask import Flask, jsonify, request

app = Flask(__name__)

SECRET = os.environ["SECRET_KEY"]
DATABASE_URL = os.environ["DATABASE_URL"]
LIMITED = os.environ.get("RATELIMIT_ENABLED", "true").lower() in ("1", "true", "yes", "on")
LIMIT = int(os.environ.get("RATELIMIT_DEFAULT", "600 per minute").split()[0].split("/")[0])
WINDOW = 60
counters = redis.Redis.from_url(os.environ["REDIS_URL"]) if LIMITED else None

# saas's gate query (saas/auth/service.py, _USER_OF_OPEN_SESSION), as PostgreSQL receives it.
PREPARE = """PREPARE floor_user_of_open_session AS SELECT users.id, users.email, users.hashed_password,
users.full_name, users.is_active, users.is_superuser, users.email_verified, users.created_at, users.updated_at,
users.security_stamp, users.mfa_enabled, users.deleted_at, users.stripe_customer_id, users.stripe_customers_deleted,
users.plan, users.plan_past_due_since, auth_sessions.methods AS session_methods, personal_org.id AS porg_id,
personal_org.name AS porg_name, personal_org.slug AS porg_slug, personal_org.personal AS porg_personal,
personal_org.personal_owner_id AS porg_personal_owner_id, personal_org.stripe_customer_id AS porg_stripe_customer_id,
personal_org.stripe_customers_deleted AS porg_stripe_customers_deleted, personal_org.plan AS porg_plan,
personal_org.plan_past_due_since AS porg_plan_past_due_since, personal_org.require_mfa AS porg_require_mfa,
personal_org.created_at AS porg_created_at, personal_org.updated_at AS porg_updated_at
FROM users JOIN auth_sessions ON auth_sessions.user_id = users.id
LEFT OUTER JOIN organizations AS personal_org ON personal_org.personal_owner_id = users.id
WHERE auth_sessions.id = $1 AND auth_sessions.revoked_at IS NULL AND auth_sessions.expires_at > $2"""
EXECUTE = "EXECUTE floor_user_of_open_session(%s, %s)"

_local = threading.local()


def cursor():
    """This thread's cursor on its own autocommit connection, the statement prepared on it."""
    if getattr(_local, "cursor", None) is None or _local.cursor.connection.closed:
        connection = psycopg2.connect(DATABASE_URL)
        connection.autocommit = True
        _local.cursor = connection.cursor()
        _local.cursor.execute(PREPARE)
    return _local.cursor


@functools.lru_cache(maxsize=4096)
def verified_claims(token):
    return jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "iat", "sub", "type"]})


def unauthorized():
    response = jsonify(code=401, status="Unauthorized", message="Invalid token.")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def iso(value):
    return value.isoformat() if value is not None else None


@app.get("/api/v1/users/me")
def me():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return unauthorized()
    try:
        claims = verified_claims(token)
    except jwt.PyJWTError:
        return unauthorized()
    if claims["exp"] <= time.time() or claims.get("type") != "access":
        return unauthorized()
    session_id, subject = claims.get("sid"), claims.get("sub")
    current = cursor()
    current.execute(EXECUTE, (session_id, datetime.datetime.now(datetime.timezone.utc)))
    row = current.fetchone()
    if row is None or str(row[0]) != subject or not row[4]:
        return unauthorized()
    if LIMITED:
        key = f"floor:user:{row[0]}:{int(time.time()) // WINDOW}"
        pipe = counters.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW, nx=True)
        count, _ = pipe.execute()
        if count > LIMIT:
            response = jsonify(code=429, status="Too Many Requests", message="Too many requests.")
            response.status_code = 429
            return response
    return {
        "id": row[0], "email": row[1], "full_name": row[3], "is_active": row[4], "is_superuser": row[5],
        "email_verified": row[6], "stripe_customer_id": row[22], "mfa_enabled": row[10],
        "created_at": iso(row[7]), "updated_at": iso(row[8]), "plan": row[24] or "free",
    }


@app.get("/hello")
def hello():
    """bench/common.py's serve() waits for this."""
    return {"message": "hello"}
