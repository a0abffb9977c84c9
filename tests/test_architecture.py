"""The shape of the code: layers import downward, services stay out of HTTP, one gate per view."""
import ast
import re
from pathlib import Path

import pytest

from saas.web.api import API_KEY, SESSION
from tests.conftest import make_app

SAAS = Path(__file__).resolve().parent.parent / "saas"
# Lowest first: a package may import itself and the ones before it, never one after it.
LAYERS = ["core", "web", "mail", "users", "orgs", "webhooks", "apikeys", "auth", "oauth", "billing", "usage", "ai", "admin",
          "system"]
# What the shared layers may use besides each other.
SHARED = {"saas.extensions"}
# Modules that speak HTTP: views and what views are built from.
HTTP_MODULES = {"routes.py", "credentials.py", "decorators.py", "limits.py"}
HTTP_NAMES = {"request", "g", "Response", "stream_with_context", "abort", "make_response"}
ALLOWED_FUNCTION_LEVEL_IMPORTS = {
    ("__init__.py", "flask_migrate"),  # only the `flask` command migrates (11 MB a process)
    ("core/queue.py", "saas"),  # the factory imports every feature, which imports the queue
    ("core/sentry.py", "sentry_sdk"),  # only with SENTRY_DSN (3 MB)
    ("core/sentry.py", "sentry_sdk.integrations.flask"),
    ("core/sentry.py", "sentry_sdk.integrations.rq"),
    ("core/sentry.py", "sentry_sdk.scrubber"),
}
# How each kind of credentials appears in an operation's `security`: a session's access token is
# pasted as a bearer token or obtained by Swagger UI's OAuth2 password login.
DOCUMENTED_AS = {
    SESSION: [{"BearerAuth": []}, {"OAuth2PasswordBearer": []}],
    API_KEY: [{"ApiKeyAuth": []}],
}
PUBLIC_OPERATIONS = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/mfa/verify"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("GET", "/api/v1/auth/oauth/providers"),
    ("GET", "/api/v1/auth/oauth/{provider}/authorize"),
    ("GET", "/api/v1/auth/oauth/{provider}/callback"),
    ("POST", "/api/v1/auth/oauth/exchange"),
    ("GET", "/api/v1/billing/plans"),
    ("POST", "/api/v1/billing/webhook"),
}


def _modules():
    for path in sorted(SAAS.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _imported_modules(tree, top_level_only=False):
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []


def _layer_of(module_name):
    parts = module_name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "saas" and parts[1] in LAYERS else None


def test_packages_import_downward_only():
    upward = []
    for path, tree in _modules():
        package = path.relative_to(SAAS).parts[0]
        if package not in LAYERS:
            continue  # saas/__init__.py, worker.py and extensions.py sit outside the layers
        # The one import inside a function is pinned by the function-level import test.
        for _, module, names in _imported_modules(tree, top_level_only=True):
            targets = [module] if module != "saas" else [f"saas.{name}" for name in names]
            for target in targets:
                layer = _layer_of(target)
                if layer is not None and LAYERS.index(layer) > LAYERS.index(package):
                    upward.append(f"{path.relative_to(SAAS)} imports {target}")
                if package in ("core", "web") and target.startswith("saas.") and layer is None and target not in SHARED:
                    upward.append(f"{path.relative_to(SAAS)} imports {target}")
    assert upward == []


def test_the_base_layer_never_imports_the_http_layer_or_a_feature():
    for path, tree in _modules():
        if path.relative_to(SAAS).parts[0] != "core":
            continue
        for _, module, _ in _imported_modules(tree):
            assert _layer_of(module) in (None, "core") or module == "saas", f"{path} imports {module}"


def test_only_http_modules_touch_the_request_or_answer_http():
    offenders = []
    for path, tree in _modules():
        relative = path.relative_to(SAAS)
        if relative.parts[0] == "web" or path.name in HTTP_MODULES or relative.parts[0] not in LAYERS:
            continue
        for _, module, names in _imported_modules(tree):
            if module in ("flask", "flask_smorest", "werkzeug.exceptions"):
                touched = HTTP_NAMES & set(names) if module != "werkzeug.exceptions" else set(names)
                if touched:
                    offenders.append(f"{relative} imports {sorted(touched)} from {module}")
    assert offenders == []


def test_function_level_imports_are_only_where_a_cycle_forces_them():
    inside_functions = []
    for path, tree in _modules():
        for function in [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node, module, _ in _imported_modules(function):
                inside_functions.append((str(path.relative_to(SAAS)), module))
    # Each has its reason beside it: a cycle (the factory imports every feature), or a library
    # that only some processes need (Alembic for `flask db`, the Sentry SDK with SENTRY_DSN).
    assert set(inside_functions) == ALLOWED_FUNCTION_LEVEL_IMPORTS


def _route_decorators(function):
    return [ast.unparse(decorator) for decorator in function.decorator_list]


def test_every_gate_sits_right_under_the_route_and_a_view_has_at_most_one():
    checked = 0
    for path in SAAS.rglob("routes.py"):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            decorators = _route_decorators(function)
            gates = [index for index, text in enumerate(decorators) if re.match(r"\w*blp\.auth\(", text)]
            assert len(gates) <= 1, f"{path.name}:{function.name} has {len(gates)} gates"
            if gates:
                checked += 1
                assert gates == [1] and re.match(r"\w*blp\.route\(", decorators[0]), f"{path.name}:{function.name}"
    assert checked >= 12


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield path, method, operation


@pytest.fixture(scope="module")
def spec_and_app():
    app = make_app(DATABASE_URL="sqlite://", REDIS_URL="")
    return app.test_client().get("/openapi.json").get_json(), app


def test_every_non_public_operation_is_gated_and_documents_its_schemes(spec_and_app):
    spec, app = spec_and_app
    views = {
        # <name>, <int:name>, <any(a, b):name> -> {name}
        (method, re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule)): app.view_functions[rule.endpoint]
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    for path, method, operation in _operations(spec):
        schemes = getattr(views[(method.upper(), path)], "auth_schemes", None)
        if (method.upper(), path) in PUBLIC_OPERATIONS or not path.startswith("/api/"):
            assert schemes is None, f"{method} {path} is public but gated"
            continue
        assert schemes, f"{method} {path} has no gate"
        assert operation["security"] == [requirement for scheme in schemes for requirement in DOCUMENTED_AS[scheme]]
        assert "401" in operation["responses"]


def test_api_keys_are_accepted_only_where_the_gate_names_them(spec_and_app):
    spec, _ = spec_and_app
    with_keys = {
        f"{method.upper()} {path}"
        for path, method, operation in _operations(spec)
        if {API_KEY.name: []} in operation.get("security", [])
    }
    assert with_keys == {
        "GET /api/v1/users/me", "GET /api/v1/usage", "POST /api/v1/ai/chat", "POST /api/v1/ai/jobs",
        "GET /api/v1/ai/jobs/{job_id}", "GET /api/v1/webhooks/event-types",
    }
    assert spec["components"]["securitySchemes"][SESSION.name]["scheme"] == "bearer"


def test_the_oauth2_password_flow_logs_in_at_the_login_operation(spec_and_app):
    spec, _ = spec_and_app
    flows = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert set(flows) == {"password"}
    login = spec["paths"][flows["password"]["tokenUrl"]]["post"]
    form = login["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    if "$ref" in form:
        form = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]
    assert {"username", "password"} <= set(form["required"])
    answers = login["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"]  # tokens, or the 2FA step
    properties = [set(spec["components"]["schemas"][answer["$ref"].rsplit("/", 1)[-1]]["properties"]) for answer in answers]
    assert any({"access_token", "token_type"} <= names for names in properties)
    assert any({"mfa_required", "mfa_token"} <= names for names in properties)


# What makes a session and its tokens. Issue 22 (and 23 for the one-time code of a social login):
# every way of logging in ends in complete_login, which alone, with the second-factor step, opens
# a session; so none can skip the second factor. A new way of logging in calls complete_login.
SESSION_MAKERS = {"AuthSession", "_open_session", "_token_pair", "create_access_token", "create_refresh_token",
                  "complete_login"}


class _CallsByFunction(ast.NodeVisitor):
    """(innermost enclosing function, called name) for every call of a name in ``names``."""

    def __init__(self, names):
        self.names, self.stack, self.found = names, [], set()

    def visit_FunctionDef(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    def visit_Call(self, node):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name in self.names:
            self.found.add((self.stack[-1] if self.stack else "<module>", name))
        self.generic_visit(node)


def test_a_login_becomes_a_session_in_one_place_only():
    found = set()
    for path, tree in _modules():
        visitor = _CallsByFunction(SESSION_MAKERS)
        visitor.visit(tree)
        found |= {(str(path.relative_to(SAAS)), function, name) for function, name in visitor.found}
    assert found == {
        ("auth/service.py", "_open_session", "AuthSession"),
        ("auth/service.py", "complete_login", "_open_session"),
        ("auth/service.py", "_verified_login", "_open_session"),  # the second factor, after complete_login
        ("auth/service.py", "_open_session", "_token_pair"),
        ("auth/service.py", "_rotated", "_token_pair"),  # a refresh: the session's next pair
        ("auth/service.py", "_token_pair", "create_access_token"),
        ("auth/service.py", "_token_pair", "create_refresh_token"),
        ("auth/routes.py", "login", "complete_login"),  # a password
        ("oauth/service.py", "_exchanged", "complete_login"),  # a social login's one-time code
    }


# Issue 27 item 1: one transaction per use case, declared once. Only saas/core/database.py opens,
# commits and rolls back transactions (``transaction()``, ``@atomic``, ``discard()``...).
TRANSACTION_OWNER = "core/database.py"


def test_only_the_declared_boundary_commits_or_rolls_back():
    offenders = []
    for path, tree in _modules():
        where = str(path.relative_to(SAAS))
        if where == TRANSACTION_OWNER:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("commit", "rollback", "begin", "begin_nested")):
                offenders.append(f"{where}:{node.lineno} {node.func.attr}()")
    assert offenders == [], "declare the use case with @atomic / transaction() instead: " + ", ".join(offenders)


def test_no_two_classes_share_a_name_nor_shadow_a_librarys():
    """Issue 27 item 4: a name means one thing (two PaymentRequired were one too many), and a
    subclass of a library's class says how it differs (ApiBlueprint, ApiRequest)."""
    defined = {}
    shadowing = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                defined.setdefault(node.name, []).append(str(path.relative_to(SAAS)))
                bases = {base.attr for base in node.bases if isinstance(base, ast.Attribute)}
                if node.name in bases:
                    shadowing.append(f"{path.relative_to(SAAS)}: {node.name}")
    assert {name: where for name, where in defined.items() if len(where) > 1} == {}
    # saas.worker.Worker keeps RQ's name: `rq worker --worker-class saas.worker.Worker` is the
    # documented command that operators' scripts run.
    assert shadowing == ["worker.py: Worker"]
