"""Model calls through an OpenAI-compatible provider: chat, streaming, background jobs."""
