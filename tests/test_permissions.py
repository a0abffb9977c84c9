"""Issue 27, item 2: permissions are named constants the gate checks and documents."""
import pytest

from saas.core.permissions import Permission
from saas.orgs import roles
from saas.web.api import SESSION
from saas.web.blueprint import ApiBlueprint
from tests.conftest import make_app


def test_the_gate_refuses_a_permission_that_is_not_a_constant_when_the_view_is_decorated():
    blp = ApiBlueprint("scratch", __name__)
    with pytest.raises(TypeError, match="takes a Permission"):
        blp.auth(SESSION, org="path", permission="members.invte")
    with pytest.raises(TypeError, match="takes a Permission"):
        blp.auth(SESSION, org="path", permission="members.invite")  # even a real one, as a bare string
    with pytest.raises(AttributeError):
        Permission.MEMBERS_INVTE  # noqa: B018 (a misspelt constant fails at import)


def test_a_role_check_refuses_a_bare_string():
    with pytest.raises(TypeError):
        roles.can("owner", "members.invite")
    assert roles.can("owner", Permission.MEMBERS_INVITE) and not roles.can("member", Permission.MEMBERS_INVITE)


def test_every_permission_is_held_by_some_role_and_described():
    held = set().union(*roles.PERMISSIONS.values())
    assert held == set(Permission)
    assert all(permission.description.endswith(".") for permission in Permission)


def test_every_organization_operation_documents_its_permission():
    app = make_app(DATABASE_URL="sqlite://", REDIS_URL="")
    spec = app.test_client().get("/openapi.json").get_json()
    documented = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "x-permission" in operation:
                documented[(method.upper(), path)] = operation["x-permission"]
                assert f"**Permission:** `{operation['x-permission']}`" in operation["description"]
    gated = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "permission", None) is not None:
            path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                gated[(method, path)] = view.permission.value
    assert documented == gated
    assert len(gated) >= 20
