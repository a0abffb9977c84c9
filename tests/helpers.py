"""Arrangements the tests share: one way to register, log in, and sign up (both)."""
PASSWORD = "correct horse battery staple"
DEFAULT_EMAIL = "user@example.com"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def tampered(token):
    """``token`` with its middle character replaced by another: never the token itself, and for
    base64 a different value too (only the last character of base64 may carry bits that decode
    to nothing). Replacing the last character with `A` instead leaves a 43-character token as it
    was one time in 16, and a forgery test would then pass or fail by chance."""
    middle = len(token) // 2
    return token[:middle] + ("B" if token[middle] == "A" else "A") + token[middle + 1:]


def register(client, email=DEFAULT_EMAIL, password=PASSWORD, **extra):
    """POST /auth/register; the created user as the API shows it."""
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def login(client, email=DEFAULT_EMAIL, password=PASSWORD):
    """POST /auth/login; the token pair."""
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def sign_up(client, email=DEFAULT_EMAIL, password=PASSWORD, **extra):
    """Register and log in: the new user's access token."""
    register(client, email, password, **extra)
    return login(client, email, password)["access_token"]


def assert_no_password_or_hash(user):
    """No field of a user object holds a password or a hash: the one field whose name says
    password is ``has_password``, a boolean."""
    named = {key: value for key, value in user.items() if "password" in key or "hash" in key}
    assert set(named) == {"has_password"} and isinstance(named["has_password"], bool), named


def at_once(app, count, request):
    """Send ``request(client)`` ``count`` times at the same moment, each from its own thread,
    app context and test client; their results, in the order they finished. A thread that dies
    fails the test at the barrier instead of hanging it."""
    import threading

    from saas.extensions import db

    barrier = threading.Barrier(count, timeout=30)
    results = []

    def send():
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            results.append(request(client))
            db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == count
    return results


def personal_org_id(user):
    """The id of the personal organization of ``user`` (as the API shows it), from the database."""
    from saas.extensions import db
    from saas.users.models import User

    return db.session.get(User, user["id"]).personal_org.id
