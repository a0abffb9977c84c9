"""Root, health checks and the API documentation."""

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
