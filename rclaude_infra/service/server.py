"""Serving the app: uvicorn on a host and port (``rclaude-infra serve``)."""

from __future__ import annotations

from .app import create_app
from .settings import ServiceSettings


def serve(settings: ServiceSettings, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
