"""The OpenAPI document as a contract for generated clients: valid OpenAPI 3.0.3, one stable
operationId and at least one tag per operation, and the copy committed with the TypeScript client
current. Needs no npm package: tests/test_client.py checks the generated TypeScript."""
import importlib.util
import json
import re

import flask
import pytest
from flask.views import MethodView
from openapi_spec_validator import OpenAPIV30SpecValidator

from saas.web.api import EnvelopeApi
from saas.web.blueprint import ApiBlueprint
from tests.conftest import ROOT, make_app

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
# Front ends name these operations: renaming one breaks them, so a rename fails here first.
PINNED_OPERATION_IDS = {
    ("get", "/"): "system_root",
    ("get", "/health"): "system_health",
    ("get", "/health/live"): "system_liveness",
    ("get", "/health/ready"): "system_readiness",
    ("post", "/api/v1/auth/register"): "auth_register",
    ("post", "/api/v1/auth/login"): "auth_login",
    ("post", "/api/v1/auth/refresh"): "auth_refresh",
    ("post", "/api/v1/auth/logout"): "auth_logout",
    ("post", "/api/v1/auth/logout-all"): "auth_logout_all",
    ("get", "/api/v1/users/me"): "users_get_me",
    ("patch", "/api/v1/users/me"): "users_update_me",
    ("post", "/api/v1/api-keys"): "api_keys_create",
    ("get", "/api/v1/api-keys"): "api_keys_list",
    ("delete", "/api/v1/api-keys/{key_id}"): "api_keys_revoke",
    ("get", "/api/v1/billing/plans"): "billing_list_plans",
    ("get", "/api/v1/billing/subscription"): "billing_get_subscription",
    ("post", "/api/v1/billing/create-checkout-session"): "billing_create_checkout_session",
    ("get", "/api/v1/billing/customer-portal"): "billing_customer_portal",
    ("post", "/api/v1/billing/webhook"): "billing_stripe_webhook",
    ("post", "/api/v1/ai/chat"): "ai_chat",
    ("post", "/api/v1/ai/jobs"): "ai_submit_job",
    ("get", "/api/v1/ai/jobs/{job_id}"): "ai_get_job",
    ("get", "/api/v1/usage"): "usage_get",
}


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


@pytest.fixture(scope="module")
def spec():
    return make_app(DATABASE_URL="sqlite://", REDIS_URL="").test_client().get("/openapi.json").get_json()


def generate_client_script():
    spec = importlib.util.spec_from_file_location("generate_client", ROOT / "scripts" / "generate_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spec_of(*blueprints):
    """The document of a bare app with the project's Api and these blueprints."""
    app = flask.Flask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = EnvelopeApi(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    return api.spec.to_dict()


def test_the_document_is_valid_openapi_3_0(spec):
    assert spec["openapi"] == "3.0.3"
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in OpenAPIV30SpecValidator(spec).iter_errors()]
    assert errors == []


def test_the_validator_finds_what_is_wrong():
    answer = {"200": {"description": "OK"}}
    broken = {
        "openapi": "3.0.3",
        "info": {"title": "t"},
        "paths": {"/x/{id}": {"get": {"operationId": "x", "responses": answer}, "post": {"operationId": "x", "responses": answer}}},
    }
    messages = "\n".join(error.message for error in OpenAPIV30SpecValidator(broken).iter_errors())
    assert '"version" is a required property' in messages
    assert "Operation ID 'x' for 'post' in '/x/{id}' is not unique" in messages
    assert "Path parameter 'id' for 'get' operation in '/x/{id}' was not resolved" in messages


def test_every_operation_has_a_unique_operation_id_and_a_declared_tag(spec):
    declared_tags = {tag["name"] for tag in spec["tags"]}
    seen = {}
    for method, path, operation in operations(spec):
        operation_id = operation.get("operationId")
        assert operation_id and re.fullmatch(r"[a-z][a-z0-9_]*", operation_id), f"{method} {path}: {operation_id!r}"
        assert operation_id not in seen, f"{operation_id} names both {seen[operation_id]} and {method} {path}"
        seen[operation_id] = f"{method} {path}"
        assert operation.get("tags"), f"{method} {path} has no tag"
        assert set(operation["tags"]) <= declared_tags, f"{method} {path}: {operation['tags']}"
    assert len(seen) >= len(PINNED_OPERATION_IDS)


def test_the_operation_ids_front_ends_use_do_not_change(spec):
    actual = {(method, path): operation.get("operationId") for method, path, operation in operations(spec)}
    assert {key: actual.get(key) for key in PINNED_OPERATION_IDS} == PINNED_OPERATION_IDS


def test_an_operation_id_is_the_blueprint_and_endpoint_unless_overridden():
    items = ApiBlueprint("items", __name__, url_prefix="/items")

    @items.route("/<int:item_id>", methods=["GET"])
    def get_item(item_id):
        """One item."""

    @items.route("", methods=["POST"], endpoint="add")
    def create_item():
        """A new item."""

    @items.route("/search", methods=["GET", "POST"])
    def search():
        """Both ways."""

    @items.route("/<int:item_id>/notes")
    class Notes(MethodView):
        def get(self, item_id):
            """The notes."""

        def delete(self, item_id):
            """No notes."""

    @items.route("/count", methods=["GET"])
    @items.doc(operationId="items_count_all")
    def count():
        """How many."""

    ids = {(method, path): operation["operationId"] for method, path, operation in operations(spec_of(items))}
    assert ids == {
        ("get", "/items/{item_id}"): "items_get_item",
        ("post", "/items"): "items_add",
        ("get", "/items/search"): "items_search_get",
        ("post", "/items/search"): "items_search_post",
        ("get", "/items/{item_id}/notes"): "items_Notes_get",
        ("delete", "/items/{item_id}/notes"): "items_Notes_delete",
        ("get", "/items/count"): "items_count_all",
    }


def test_two_operations_with_one_id_stop_the_app_from_starting():
    first, second = ApiBlueprint("a", __name__, url_prefix="/a"), ApiBlueprint("a_b", __name__, url_prefix="/ab")

    @first.route("/x", methods=["GET"])
    def b_c():
        """a_b_c"""

    @second.route("/y", methods=["GET"])
    def c():
        """a_b_c too"""

    with pytest.raises(ValueError, match=r"operationId 'a_b_c' of GET /ab/y is already GET /a/x's"):
        spec_of(first, second)


def test_the_committed_openapi_document_is_the_apps(spec):
    script = generate_client_script()
    committed = json.loads((script.CLIENT / script.DOCUMENT).read_text())
    assert script.openapi_document() == spec
    assert committed == spec, script.OUT_OF_DATE
