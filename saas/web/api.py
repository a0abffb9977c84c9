"""flask-smorest's ``Api`` as the app uses it (``EnvelopeApi``): the error envelope for HTTP errors,
the security schemes and the operationIds.

The ``ApiBlueprint`` that features use, with its auth gate, is in ``saas.web.blueprint``.
"""
from dataclasses import dataclass, field

import flask_smorest
from apispec import BasePlugin
from flask_smorest.pagination import PaginationMetadataSchema
from werkzeug.routing import IntegerConverter

from saas.core.errors import envelope
from saas.core.ids import MAX_ID, parse_id

# Headers of an HTTP error that a client needs to act on it.
FORWARDED_ERROR_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


@dataclass(frozen=True)
class SecurityScheme:
    """A kind of credentials a request can carry, as the OpenAPI document declares it.

    ``also_documented_as`` names further OpenAPI schemes that yield the same credentials, each
    an alternative in the ``security`` of every operation that accepts them.
    """

    name: str
    definition: dict = field(compare=False, hash=False)
    also_documented_as: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def declarations(self):
        """``{OpenAPI scheme name: definition}``, this scheme's own first."""
        return {self.name: self.definition, **self.also_documented_as}

    @property
    def requirements(self):
        """The alternatives this scheme adds to an operation's ``security``."""
        return [{name: []} for name in self.declarations]


# The login endpoint, which also answers the OAuth2 password grant form.
LOGIN_PATH = "/api/v1/auth/login"
# A login session's access token: `Authorization: Bearer <JWT>`. Declared a second time as an
# OAuth2 password flow so that Swagger UI's Authorize dialog can log in with email and password.
SESSION = SecurityScheme(
    "BearerAuth",
    {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    also_documented_as={
        "OAuth2PasswordBearer": {"type": "oauth2", "flows": {"password": {"tokenUrl": LOGIN_PATH, "scopes": {}}}},
    },
)
# An API key: `X-API-Key: sk_...` (or `Authorization: Bearer sk_...`).
API_KEY = SecurityScheme("ApiKeyAuth", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
SCHEMES = (SESSION, API_KEY)


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: werkzeug's, except that a number too long for ``int()``
    still matches, as one past every id (``MAX_ID + 1``). Routing must not answer for an id:
    its 404 would come before the gate's 401. The gate refuses ids past ``MAX_ID`` with a 404
    once it knows the caller (``saas.web.blueprint``)."""

    def to_python(self, value):
        number = parse_id(value)
        return MAX_ID + 1 if number is None else number


class OperationIds(BasePlugin):
    """An apispec plugin giving every operation an ``operationId`` without being asked:
    ``<blueprint name>_<endpoint>``, the endpoint being Flask's (the view function's name unless
    ``endpoint=`` is given), so ``get_me`` in the ``users`` blueprint is ``users_get_me``. When
    one endpoint serves several methods (a ``MethodView``, or ``methods=["GET", "POST"]``) each
    operation gets ``_<method>`` appended: ``items_item_get``. An ``operationId`` given with
    ``@blp.doc(operationId="...")`` is kept. The typed client (``make client``) names operations
    by it, so renaming a view renames its operation (and breaks front ends): override then.
    flask-smorest hands apispec the Flask rule of each path, which is where the endpoint comes from."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        base = rule.endpoint.replace(".", "_", 1)
        for method, operation in operations.items():
            derived = base + (f"_{method}" if len(operations) > 1 else "")
            operation.setdefault("operationId", derived)


class EnvelopeApi(flask_smorest.Api):
    def __init__(self, app=None, *, spec_kwargs=None, **kwargs):
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs["extra_plugins"] = [OperationIds(), *spec_kwargs.get("extra_plugins", ())]
        super().__init__(app, spec_kwargs=spec_kwargs, **kwargs)

    def init_app(self, app, *args, **kwargs):
        app.url_map.converters["int"] = IdConverter  # before any route is added
        super().init_app(app, *args, **kwargs)
        for scheme in SCHEMES:
            for name, definition in scheme.declarations.items():
                self.spec.components.security_scheme(name, definition)

    def _register_pagination_header(self):
        """``X-Pagination`` carries JSON. flask-smorest documents it with ``schema``, which in
        OpenAPI means the "simple" style (``total,3,page,1``): clients and validators would parse
        it wrong. ``content`` says it is JSON."""
        self.spec.components.header(
            "PAGINATION",
            {"description": "Pagination metadata, as JSON.",
             "content": {"application/json": {"schema": PaginationMetadataSchema}}},
            lazy=True,
        )

    def register_blueprint(self, blp, **options):
        super().register_blueprint(blp, **options)
        # Each operationId names one operation in generated clients (saas.web.blueprint.Blueprint).
        seen = {}
        for path, operations in self.spec.to_dict()["paths"].items():
            for method, operation in operations.items():
                operation_id = operation.get("operationId") if isinstance(operation, dict) else None
                if operation_id in seen:
                    raise ValueError(
                        f"operationId {operation_id!r} of {method.upper()} {path} is already "
                        f"{seen[operation_id]}'s: override one with @blp.doc(operationId=...)"
                    )
                if operation_id:
                    seen[operation_id] = f"{method.upper()} {path}"

    def handle_http_exception(self, error):
        """Answer any HTTP error as ``{code, status, message, errors?}``."""
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        message = data.get("message") or error.description
        if error.code == 422 and errors and not data.get("message"):
            message = "The request body or parameters are invalid."
        headers = {name: value for name, value in error.get_headers() if name in FORWARDED_ERROR_HEADERS}
        headers.update(data.get("headers") or {})
        if error.response is not None:  # e.g. flask-limiter's 429 carries Retry-After here
            headers.update(
                (name, value) for name, value in error.response.headers.items() if name in FORWARDED_ERROR_HEADERS
            )
        return envelope(error.code, message, errors), error.code, headers
