"""The service, started for real: uvicorn on a free loopback port, over HTTP, on a fresh
SQLite file and on a fresh database of a real PostgreSQL (one server per test worker),
running tasks with the local provider under a private ``RCLAUDE_HOME``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback import started
from postgres_server import binaries, new_database, postgres


@pytest.fixture(scope="session", name="postgres_admin_url")
def _postgres_admin_url() -> Iterator[str]:
    import shutil
    import tempfile

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    # Not under pytest's temporary root: that is 0700 to root, and the server runs as
    # the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="rclaude-postgres-"))
    try:
        with postgres(folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Service:
    """A started service: its URL, its database URL, and clients."""

    def __init__(self, url: str, database_url: str, requests_per_minute: int) -> None:
        self.url = url
        self.database_url = database_url
        self.requests_per_minute = requests_per_minute

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(params=["sqlite", "postgres"], name="database_url")
def _database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    return new_database(request.getfixturevalue("postgres_admin_url"))


def new_app(requests_per_minute: int) -> Any:
    """The service's app on the environment's database (another process's, in effect)."""
    from rclaude_infra.service import ServiceSettings, create_app

    return create_app(ServiceSettings.from_env(max_concurrent_tasks=3,
                                               requests_per_minute=requests_per_minute,
                                               device_interval=1))


#: The tests of other things run on a free plan that limits nothing the service's own
#: limits do not (``@pytest.mark.plans(None)``: the default plans; ``plans(TOML)``: those).
GENEROUS_PLANS = """
[plans.free]
concurrency = 100
service_model_key = true
"""


@pytest.fixture(name="service")
def _service(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             request: pytest.FixtureRequest) -> Iterator[Service]:
    """``@pytest.mark.rate_limit(N)``: N requests per user per minute (default: many);
    ``@pytest.mark.plans(...)``: the plans (see ``GENEROUS_PLANS``)."""
    marker = request.node.get_closest_marker("rate_limit")
    rate = marker.args[0] if marker else 100_000
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    plans = request.node.get_closest_marker("plans")
    if plans is None or plans.args[0] is not None:
        (tmp_path / "plans.toml").write_text(GENEROUS_PLANS if plans is None else plans.args[0])
        monkeypatch.setenv("RCLAUDE_PLANS_FILE", str(tmp_path / "plans.toml"))
    monkeypatch.setenv("RCLAUDE_DATABASE_URL", database_url)
    with started(new_app(rate)) as url:
        yield Service(url, database_url, rate)


def admin(*argv: str) -> str:
    """The admin CLI (``users add``, ``tokens create``) on the service's database, in this
    process; its standard output."""
    import contextlib
    import io

    from rclaude_infra.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0, argv
    return out.getvalue()


@pytest.fixture(name="alice")
def _alice(service: Service) -> str:
    """A user's token (tasks:read and tasks:write), made with the admin CLI."""
    admin("users", "add", "alice@example.com")
    return admin("tokens", "create", "alice@example.com", "--name", "laptop").strip()


@pytest.fixture(name="bob")
def _bob(service: Service) -> str:
    admin("users", "add", "bob@example.com")
    return admin("tokens", "create", "bob@example.com").strip()


def wait_done(client: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    """The task once it has ended, as the API shows it."""
    from waiting import wait_until

    ended = ("SUCCEEDED", "FAILED", "STOPPED")
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(client.get(f"/v1/tasks/{task_id}").json())
        return seen.get("status") in ended

    wait_until(done, f"task {task_id} to end", timeout)
    return seen


@pytest.fixture(name="idp")
def _idp() -> Iterator[Any]:
    """Loopback fakes of GitHub's and Google's OAuth endpoints (fake_oauth.py)."""
    from fake_oauth import FakeProviders

    fake = FakeProviders()
    with started(fake.app()) as url:
        fake.base = url
        yield fake


@pytest.fixture(name="site")
def _site(idp: Any, database_url: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """The service, offering sign-in at both fakes."""
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RCLAUDE_DATABASE_URL", database_url)
    for key, value in idp.env().items():
        monkeypatch.setenv(key, value)
    with started(new_app(100_000)) as url:
        idp.service_url = url
        yield Service(url, database_url, 100_000)
