"""Several service processes on one database share the work: a task recorded by a request
is started once by one dispatcher holding a lease on it; a process that dies holding a
lease loses no task (another takes it over when the lease runs out); API-only processes
leave the starting to ``rclaude-infra worker``. Real processes, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback import free_port
from postgres_server import new_database
from sqlalchemy import create_engine, text
from waiting import wait_until

from conftest import GENEROUS_PLANS, Service, admin, wait_done


def _serve(env: dict[str, str], *flags: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "rclaude_infra", "serve", "--port",
                                str(port), *flags], env=env, stderr=subprocess.PIPE,
                               text=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, process.communicate()[1]
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, "the service to answer", 60)
    return process, url


@pytest.fixture(name="shared")
def _shared(postgres_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[dict[str, str], str]]:
    """The environment of processes sharing one PostgreSQL database and one home (the
    local provider's tasks and the secrets' key), and a user's token."""
    database_url = new_database(postgres_admin_url)
    (tmp_path / "plans.toml").write_text(GENEROUS_PLANS)
    env = {**os.environ, "RCLAUDE_HOME": str(tmp_path / "home"),
           "RCLAUDE_DATABASE_URL": database_url,
           "RCLAUDE_PLANS_FILE": str(tmp_path / "plans.toml")}
    for key in ("RCLAUDE_HOME", "RCLAUDE_DATABASE_URL", "RCLAUDE_PLANS_FILE"):
        monkeypatch.setenv(key, env[key])
    assert subprocess.run([sys.executable, "-m", "rclaude_infra", "db", "upgrade"],
                          env=env, capture_output=True, timeout=120).returncode == 0
    admin("users", "add", "alice@example.com")
    token = admin("tokens", "create", "alice@example.com").strip()
    yield env, token


def _rows(database_url: str) -> dict[str, tuple[object, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {row[0]: tuple(row[1:]) for row in connection.execute(text(
                "SELECT id, dispatch_attempts, lease_owner, dispatched_at, final_status "
                "FROM tasks"))}
    finally:
        engine.dispose()


def _stopped(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.communicate(timeout=60)


def test_two_processes_share_the_work_and_each_task_starts_once(
        shared: tuple[dict[str, str], str]) -> None:
    env, token = shared
    first, first_url = _serve(env)
    second, second_url = _serve(env)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=first_url, headers=auth, timeout=60) as a, \
                httpx.Client(base_url=second_url, headers=auth, timeout=60) as b:
            ids = []
            for n in range(8):
                client = (a, b)[n % 2]
                created = client.post("/v1/tasks", json={"command": f"echo started-{n}"})
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
            for n, task_id in enumerate(ids):
                other = (b, a)[n % 2]  # status and logs from the process it was not sent to
                assert wait_done(other, task_id)["status"] == "SUCCEEDED"
                lines = [x["text"] for x in other.get(f"/v1/tasks/{task_id}/logs")
                         .json()["lines"]]
                assert lines.count(f"started-{n}") == 1, lines
            # Events from either process end with the task's end.
            with b.stream("GET", f"/v1/tasks/{ids[0]}/events") as events:
                body = "".join(events.iter_text())
            assert "started-0" in body and '"status": "SUCCEEDED"' in body
    finally:
        _stopped(first, second)
    rows = _rows(env["RCLAUDE_DATABASE_URL"])
    assert {task_id: (row[0], row[1]) for task_id, row in rows.items()} == {
        task_id: (1, None) for task_id in ids}  # one claim each, no lease left


def test_a_task_claimed_by_a_process_that_died_is_taken_over(
        shared: tuple[dict[str, str], str], tmp_path: Path) -> None:
    """What a process killed mid-dispatch leaves: a claimed, unstarted task (and one it
    got as far as starting). The live process takes both over once the leases run out,
    and starts each once."""
    env, token = shared
    api, url = _serve(env, "--no-dispatch")  # nothing here starts them but the worker
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=auth, timeout=60) as a:
            claimed = a.post("/v1/tasks", json={"command": "echo taken-over"}).json()["id"]
            half = a.post("/v1/tasks", json={"command": "echo started-once"}).json()["id"]
        engine = create_engine(env["RCLAUDE_DATABASE_URL"])
        # A live lease (long enough for a loaded machine to start a worker meanwhile:
        # with 3 s, CI's worker once started after it ran out).
        live = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
        with engine.begin() as connection:
            connection.execute(text(
                "UPDATE tasks SET lease_owner = 'dead-host:4242:0', lease_until = :until, "
                "dispatch_attempts = 1"), {"until": live})
            spec = json.loads(connection.execute(text(
                "SELECT spec FROM tasks WHERE id = :id"), {"id": half}).scalar_one())
        # The dead process got as far as starting the second one on the deployment.
        from rclaude_infra import Deployment
        from rclaude_infra.tasks.spec import TaskSpec

        Deployment("service", provider="local").run_task(TaskSpec.from_mapping(spec))
        # While the lease holds, a worker leaves them alone.
        once = subprocess.run([sys.executable, "-m", "rclaude_infra", "worker", "--once",
                               "--json"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert once.returncode == 0, once.stderr
        assert json.loads(once.stdout) == {"taken": 0}
        # The dead process's lease runs out.
        with engine.begin() as connection:
            connection.execute(text("UPDATE tasks SET lease_until = :past"), {
                "past": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)})
        engine.dispose()
        worker = subprocess.Popen([sys.executable, "-m", "rclaude_infra", "worker",
                                   "--poll", "0.2"], env=env, stderr=subprocess.PIPE,
                                  text=True)
        try:
            with httpx.Client(base_url=url, headers=auth, timeout=60) as a:
                for task_id, line in ((claimed, "taken-over"), (half, "started-once")):
                    assert wait_done(a, task_id)["status"] == "SUCCEEDED"
                    lines = [x["text"] for x in a.get(f"/v1/tasks/{task_id}/logs")
                             .json()["lines"]]
                    assert lines.count(line) == 1, lines
        finally:
            _stopped(worker)
    finally:
        _stopped(api)
    rows = _rows(env["RCLAUDE_DATABASE_URL"])
    assert rows[claimed][0] == rows[half][0] == 2  # the dead claim, then the takeover
    assert rows[claimed][1] is None and rows[half][1] is None


def test_an_api_only_process_leaves_tasks_queued_and_a_cancel_keeps_them_unstarted(
        shared: tuple[dict[str, str], str]) -> None:
    env, token = shared
    api, url = _serve(env, "--no-dispatch")
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=auth, timeout=60) as a:
            kept = a.post("/v1/tasks", json={"command": "echo ran"}).json()["id"]
            dropped = a.post("/v1/tasks", json={"command": "echo never"}).json()["id"]
            queued = a.get(f"/v1/tasks/{kept}").json()
            assert queued["status"] == "QUEUED"
            assert a.get(f"/v1/tasks/{kept}/logs").json() == {"lines": []}
            assert a.get(f"/v1/tasks/{kept}/result").status_code == 409
            cancelled = a.post(f"/v1/tasks/{dropped}/cancel").json()
            assert cancelled["status"] == "STOPPED" and "before it started" in cancelled[
                "reason"]
            done = subprocess.run([sys.executable, "-m", "rclaude_infra", "worker", "--once",
                                   "--json"], env=env, capture_output=True, text=True,
                                  timeout=120)
            assert json.loads(done.stdout) == {"taken": 1}, done.stderr
            assert wait_done(a, kept)["status"] == "SUCCEEDED"
            assert a.get(f"/v1/tasks/{dropped}").json()["status"] == "STOPPED"
    finally:
        _stopped(api)


def test_a_follower_of_a_queued_task_hears_it_start_and_end(service: Service,
                                                            alice: str) -> None:
    with service.client(alice) as client:
        task = client.post("/v1/tasks", json={"command": "echo followed"}).json()
        with client.stream("GET", f"/v1/tasks/{task['id']}/events") as events:
            body = "".join(events.iter_text())
    assert "followed" in body and '"status": "SUCCEEDED"' in body


def test_dispatchers_claiming_at_once_never_claim_a_task_twice(database_url: str) -> None:
    """Six dispatchers (as in six processes: an engine each) look at the same twenty
    waiting tasks at the same moment: each task is claimed by exactly one."""

    from rclaude_infra.service import ServiceSettings
    from rclaude_infra.service.dispatch import BATCH, Dispatcher
    from rclaude_infra.service.models import TaskRecord, User, now
    from rclaude_infra.service.store import Database, make_engine, migrate

    settings = ServiceSettings(database_url=database_url)
    engines = [make_engine(settings) for _ in range(6)]
    migrate(engines[0])
    try:
        with Database(engines[0]).session() as session:
            user = User(email="a@example.com", is_admin=False, created_at=now())
            session.add(user)
            session.flush()
            session.add_all(TaskRecord(id=f"t-race-{n:02d}", user_id=user.id,
                                       request_hash="h", spec="{}", created_at=now(),
                                       dispatch_attempts=0) for n in range(BATCH * 2))
        dispatchers = [Dispatcher(Database(e), None, None) for e in engines]  # type: ignore[arg-type]
        together = threading.Barrier(len(dispatchers))
        claims: list[list[str]] = [[] for _ in dispatchers]

        def claim(n: int) -> None:
            together.wait()
            for _ in range(3):
                claims[n].extend(dispatchers[n].claim())

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(claims))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        every = [task_id for claimed in claims for task_id in claimed]
        assert sorted(every) == [f"t-race-{n:02d}" for n in range(BATCH * 2)]
    finally:
        for engine in engines:
            engine.dispose()


@contextmanager
def _api_only(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[tuple[Any, httpx.Client]]:
    """An API-only service (its dispatcher not running) and alice's client of it."""
    from conftest import started
    from rclaude_infra.service import ServiceSettings, create_app

    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RCLAUDE_DATABASE_URL", database_url)
    (tmp_path / "plans.toml").write_text(GENEROUS_PLANS)
    monkeypatch.setenv("RCLAUDE_PLANS_FILE", str(tmp_path / "plans.toml"))
    app = create_app(ServiceSettings.from_env(dispatch=False))
    with started(app) as url:
        admin("users", "add", "alice@example.com")
        token = admin("tokens", "create", "alice@example.com").strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as client:
            yield app, client


class _Around:
    """The app's deployment, with ``before()`` called inside each ``run_task``."""

    def __init__(self, deployment: Any, before: Any) -> None:
        self.deployment, self.before = deployment, before

    def run_task(self, spec: object, **kwargs: object) -> object:
        self.before()
        return self.deployment.run_task(spec, **kwargs)

    def task(self, task_id: str) -> object:
        return self.deployment.task(task_id)


def test_a_task_cancelled_while_it_starts_is_stopped(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancel arrives while a dispatcher is in the deployment's run_task: the task
    it then starts is stopped, and it reads STOPPED."""
    from rclaude_infra.service.dispatch import Dispatcher
    from rclaude_infra.service.vault import Vault, load_key

    with _api_only(database_url, tmp_path, monkeypatch) as (app, client):
        task_id = client.post("/v1/tasks", json={"command": "sleep 300"}).json()["id"]
        deployment = app.state.deployment

        def cancel() -> None:
            cancelled = client.post(f"/v1/tasks/{task_id}/cancel").json()
            assert cancelled["status"] == "STOPPED"

        dispatcher = Dispatcher(app.state.db, _Around(deployment, cancel),  # type: ignore[arg-type]
                                Vault(load_key()))
        assert dispatcher.run_once() == 1
        wait_until(lambda: deployment.task(task_id).status.done, "the task to stop", 60)
        assert deployment.task(task_id).status.value == "STOPPED"
        assert client.get(f"/v1/tasks/{task_id}").json()["status"] == "STOPPED"


def test_one_process_starts_the_tasks_it_claimed_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start waits on the deployment (S3, RunTask): the tasks one look claimed are
    started side by side. Here each start waits for the other inside run_task, which
    only starts that do not wait for each other can pass (a broken barrier fails one)."""
    from rclaude_infra.service.dispatch import Dispatcher
    from rclaude_infra.service.vault import Vault, load_key

    with _api_only(f"sqlite:///{tmp_path / 'service.db'}", tmp_path, monkeypatch) as (
            app, client):
        ids = [client.post("/v1/tasks", json={"command": "true"}).json()["id"]
               for _ in range(2)]
        both = threading.Barrier(2, timeout=20)
        dispatcher = Dispatcher(app.state.db,
                                _Around(app.state.deployment, both.wait),  # type: ignore[arg-type]
                                Vault(load_key()))
        assert dispatcher.run_once() == 2
        for task_id in ids:
            assert wait_done(client, task_id)["status"] == "SUCCEEDED"
