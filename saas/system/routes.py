"""Service information and health checks."""
from flask import current_app

from saas.extensions import limiter
from saas.system.health import check_dependencies
from saas.system.schemas import HealthSchema, LivenessSchema, RootSchema
from saas.web.blueprint import ApiBlueprint

blp = ApiBlueprint("system", __name__, description="Service information and health.")


@blp.route("/", methods=["GET"])
@blp.response(200, RootSchema)
def root():
    """Name and version of the service, and where its API docs are."""
    return {
        "message": f"Welcome to {current_app.config['APP_NAME']}",
        "version": current_app.config["APP_VERSION"],
        "docs": "/docs",
        "redoc": "/redoc",
    }


@blp.route("/health", methods=["GET"])
@limiter.exempt
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="A dependency is down; it is named.")
def health():
    """Whether PostgreSQL and Redis answer. 503 names the part that does not."""
    report = check_dependencies(include_migrations=False)
    return report, 200 if report["status"] == "healthy" else 503


@blp.route("/health/live", methods=["GET"])
@limiter.exempt
@blp.response(200, LivenessSchema)
def liveness():
    """The process is up and serving; checks no dependency (for restart decisions)."""
    return {"status": "alive"}


@blp.route("/health/ready", methods=["GET"])
@limiter.exempt
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="Not ready; the failing part is named.")
def readiness():
    """Ready for traffic: PostgreSQL and Redis answer and the schema is at the latest migration."""
    report = check_dependencies(include_migrations=True)
    return report, 200 if report["status"] == "healthy" else 503
