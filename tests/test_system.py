"""Root, health checks and the API documentation."""
import json

from tests.conftest import make_app

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
CLOSED_PORT_POSTGRES = "postgresql://postgres@127.0.0.1:1/nothing"


def test_root_names_the_service_and_its_docs(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json() == {
        "message": "Welcome to saas",
        "version": "1.0.0",
        "docs": "/docs",
        "redoc": "/redoc",
    }


def test_health_reports_every_dependency_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "healthy", "database": "ok", "redis": "ok"}


def test_health_is_503_and_names_redis_when_redis_is_down(database):
    app = make_app(REDIS_URL=CLOSED_PORT_REDIS)
    response = app.test_client().get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert body["redis"] != "ok"
    assert body["database"] == "ok"


def test_health_is_503_and_names_the_database_when_postgres_is_down(redis_url):
    app = make_app(DATABASE_URL=CLOSED_PORT_POSTGRES, DB_CONNECT_TIMEOUT="1")
    response = app.test_client().get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] != "ok"
    assert body["redis"] == "ok"


def test_liveness_needs_no_dependency():
    app = make_app(DATABASE_URL=CLOSED_PORT_POSTGRES, REDIS_URL=CLOSED_PORT_REDIS)
    response = app.test_client().get("/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "alive"}


def test_readiness_checks_migrations_are_at_head(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json()["migrations"] == "ok"


def test_readiness_is_503_when_postgres_is_down():
    app = make_app(DATABASE_URL=CLOSED_PORT_POSTGRES, DB_CONNECT_TIMEOUT="1")
    assert app.test_client().get("/health/ready").status_code == 503


def test_openapi_document_declares_bearer_security_and_every_endpoint(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"] == {
        "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "OAuth2PasswordBearer": {
            "type": "oauth2",
            "flows": {"password": {"tokenUrl": "/api/v1/auth/login", "scopes": {}}},
        },
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    for path in (
        "/",
        "/health",
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/users/me",
        "/api/v1/billing/create-checkout-session",
        "/api/v1/billing/customer-portal",
        "/api/v1/billing/webhook",
    ):
        assert path in spec["paths"], path
    assert {"BearerAuth": []} in spec["paths"]["/api/v1/users/me"]["get"]["security"]
    assert spec["paths"]["/api/v1/users/me"]["patch"]["security"] == [{"BearerAuth": []}, {"OAuth2PasswordBearer": []}]


def test_login_documents_json_and_oauth2_form_bodies(client):
    spec = client.get("/openapi.json").get_json()
    content = spec["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-www-form-urlencoded"}


def test_every_endpoint_has_a_description(client):
    spec = client.get("/openapi.json").get_json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method in ("get", "post", "patch", "put", "delete"):
                assert operation.get("summary") or operation.get("description"), f"{method} {path}"


def test_swagger_ui_and_redoc_pages_are_served(client):
    swagger = client.get("/docs")
    assert swagger.status_code == 200
    assert b"swagger-ui" in swagger.data.lower()
    redoc = client.get("/redoc")
    assert redoc.status_code == 200
    assert b"redoc" in redoc.data.lower()


def test_unknown_path_is_a_json_404(client):
    response = client.get("/no/such/path")
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json()["code"] == 404
    assert response.get_json()["status"] == "Not Found"


def test_wrong_method_is_a_json_405_with_allow_header(client):
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.get_json()["code"] == 405
    assert "GET" in response.headers["Allow"]


def test_request_id_is_generated_and_returned(client):
    response = client.get("/health/live")
    assert len(response.headers["X-Request-ID"]) >= 16


def test_request_id_from_the_caller_is_kept(client):
    response = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_the_liveness_probe_is_answered_at_the_edge_with_the_views_answer(database, capsys):
    """A probe (no Origin header) is answered by the WSGI edge without Flask's dispatch; its
    body, security headers, log line and metric are the ones the view gives a browser's
    request, without the CORS headers only a cross-origin request needs."""
    app = make_app(LOG_LEVEL="INFO", METRICS_TOKEN="metrics-token-for-the-suite")
    dispatched = []
    app.before_request(lambda: dispatched.append(1))
    client = app.test_client()

    probe = client.get("/health/live", headers={"X-Request-ID": "probe-1"})
    assert dispatched == []
    browser = client.get("/health/live", headers={"Origin": "http://localhost:3000"})
    assert dispatched == [1]

    assert probe.status_code == browser.status_code == 200
    assert probe.data == browser.data and probe.get_json() == {"status": "alive"}
    assert probe.headers["Content-Type"] == browser.headers["Content-Type"]
    assert probe.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in probe.headers
    assert browser.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    for name in ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Referrer-Policy"):
        assert probe.headers[name] == browser.headers[name]
    assert probe.headers["X-Request-ID"] == "probe-1"

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logged = [line for line in lines if line.get("logger") == "saas.request" and line["request_id"] == "probe-1"]
    assert [(line["path"], line["status"], line["method"]) for line in logged] == [("/health/live", 200, "GET")]

    # Anything but a plain GET goes through Flask as before.
    assert client.head("/health/live").status_code == 200
    assert client.post("/health/live").status_code == 405
    assert len(dispatched) == 3
    # Counted under the view's endpoint, the probe's and the browser's GET alike.
    metrics = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-for-the-suite"}).get_data(as_text=True)
    assert 'saas_http_request_duration_seconds_count{endpoint="system.liveness",method="GET",status="200"} 2.0' in metrics
