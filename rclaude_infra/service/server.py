"""Serving the app: uvicorn on a host and port (``rclaude-infra serve``), and the
background work alone (``rclaude-infra worker``)."""

from __future__ import annotations

from .app import create_app
from .settings import ServiceSettings, deployment_of


def serve(settings: ServiceSettings, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def work(settings: ServiceSettings, *, once: bool = False, poll_seconds: float = 1.0) -> int:
    """Start the recorded tasks and record their ends until SIGINT or SIGTERM (``once``:
    one round); returns how many tasks this process took. The secrets' key must be the
    API processes' (``RCLAUDE_SECRETS_KEY``, or the same key file)."""
    import signal
    import threading

    from .billing import billing_of
    from .dispatch import Dispatcher, task_event_queue
    from .store import Database, make_engine, prepare
    from .vault import Vault, load_key

    engine = make_engine(settings)
    prepare(engine, settings)
    dispatcher = Dispatcher(Database(engine),
                            deployment_of(settings),
                            Vault(load_key()), poll_seconds=poll_seconds,
                            plans=settings.plans, billing=billing_of(settings))
    try:
        if once:
            taken = dispatcher.run_once()
            dispatcher.reconcile()
            return taken
        queue = task_event_queue(settings, dispatcher.deployment)
        if queue is not None:
            dispatcher.follow_events(queue)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: dispatcher.stop(timeout=0))
        dispatcher.run_forever()
        return dispatcher.taken
    finally:
        engine.dispose()
