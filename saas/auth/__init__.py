"""Sessions and tokens: registration, login, refresh rotation, logout, the SESSION scheme."""
from saas.auth.routes import blp

__all__ = ["blp"]
