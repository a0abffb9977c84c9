"""Model calls through an OpenAI-compatible provider: chat, streaming, background jobs."""
from saas.ai.routes import blp

__all__ = ["blp"]
