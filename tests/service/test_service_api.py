"""The service's HTTP API, against a started server, on SQLite and on PostgreSQL: tokens
made by the admin CLI, tasks run by the local provider, problem details naming fields,
idempotent retries, pages, and every task route tried with another user's ids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from waiting import wait_until

from conftest import Service, admin, wait_done
from rclaude_infra.cli import main


def test_health_readiness_and_the_openapi_document(service: Service) -> None:
    with service.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["provider"] == "local"
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/tasks", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/cancel",
            "/v1/tasks/{task_id}/follow-up", "/v1/tasks/{task_id}/result",
            "/v1/tasks/{task_id}/diff", "/v1/tasks/{task_id}/logs", "/v1/me", "/v1/tokens",
            "/v1/usage"} <= set(paths)


def test_a_token_from_the_admin_cli_signs_the_caller_in(service: Service, alice: str) -> None:
    assert alice.startswith("rci_") and len(alice) > 40
    with service.client(alice) as client:
        me = client.get("/v1/me").json()
    assert me["email"] == "alice@example.com" and me["token"]["name"] == "laptop"
    assert me["token"]["scopes"] == ["tasks:read", "tasks:write"]


@pytest.mark.parametrize("header", [None, "Bearer rci_not-a-token", "Basic abc", "Bearer"])
def test_without_a_valid_token_every_route_is_401_with_a_challenge(
        service: Service, header: str | None) -> None:
    with service.client() as client:
        answer = client.get("/v1/tasks", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["status"] == 401


def test_a_read_only_token_may_not_start_tasks(service: Service, alice: str) -> None:
    reader = admin("tokens", "create", "alice@example.com", "--scope", "tasks:read").strip()
    with service.client(reader) as client:
        answer = client.post("/v1/tasks", json={"command": "true"})
        assert client.get("/v1/tasks").status_code == 200
    assert answer.status_code == 403 and answer.json()["field"] == "scopes"
    assert "tasks:write" in answer.json()["detail"]


def test_a_task_runs_end_to_end(service: Service, alice: str) -> None:
    with service.client(alice) as client:
        created = client.post("/v1/tasks", json={"command": "echo hello from the service"})
        assert created.status_code == 201, created.text
        task = created.json()
        assert created.headers["location"] == f"/v1/tasks/{task['id']}"
        # Recorded, for the dispatcher to start (at once: this process's own).
        assert task["status"] in ("QUEUED", "PENDING", "RUNNING", "SUCCEEDED")
        done = wait_done(client, task["id"])
        assert done["status"] == "SUCCEEDED" and done["exit_code"] == 0
        lines = [line["text"] for line in client.get(f"/v1/tasks/{task['id']}/logs")
                 .json()["lines"]]
        assert "hello from the service" in lines
        result = client.get(f"/v1/tasks/{task['id']}/result").json()
        assert result["status"] == "SUCCEEDED" and result["cost"]["total_usd"] == 0.0
        diff = client.get(f"/v1/tasks/{task['id']}/diff")
        assert diff.status_code == 200 and diff.headers["content-type"].startswith(
            "text/x-diff") and diff.text == ""
        usage = client.get("/v1/usage").json()
        assert usage["tasks"] == 1


def test_the_diff_of_a_task_on_a_repository(service: Service, alice: str,
                                            tmp_path: Path) -> None:
    from git_repos import bare_repository
    from git_server import GitServer

    bare_repository(tmp_path / "served" / "app.git", {"README.md": "hello\n"})
    with GitServer(tmp_path / "served", None) as git, service.client(alice) as client:
        task = client.post("/v1/tasks", json={
            "command": "echo changed > README.md", "repo": f"{git.url}/app.git"}).json()
        assert wait_done(client, task["id"])["status"] == "SUCCEEDED"
        diff = client.get(f"/v1/tasks/{task['id']}/diff").text
        assert "-hello" in diff and "+changed" in diff
        result = client.get(f"/v1/tasks/{task['id']}/result").json()
        assert result["diff"]["files"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"command": "true", "task_id": "t-mine"}, "task_id"),
    ({"command": "true", "secrets": ["AWS_SECRET_ACCESS_KEY"]}, "secrets"),
    ({"command": "true", "timeout": 0}, "timeout"),
    ({"command": "true", "repo": "/etc"}, "repo"),
    ({"command": "true", "repo": "file:///srv/private.git"}, "repo"),
    ({"command": "true", "env": {"RCLAUDE_TASK_ID": "x"}}, "env"),
    ({"command": "true", "max_budget_usd": -1}, "max_budget_usd"),
    ({"prompt": "a", "command": "b"}, "command"),
    ({}, "prompt/command"),
])
def test_a_bad_field_is_a_422_problem_naming_it(service: Service, alice: str,
                                                body: dict[str, object], field: str) -> None:
    with service.client(alice) as client:
        answer = client.post("/v1/tasks", json=body)
        listed = client.get("/v1/tasks").json()["tasks"]
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert answer.headers["content-type"] == "application/problem+json"
    assert problem["field"].split(".")[0] == field or field in problem["detail"], problem
    assert listed == []  # nothing was started


def test_an_idempotency_key_returns_the_same_task(service: Service, alice: str) -> None:
    with service.client(alice) as client:
        body = {"command": "echo once"}
        first = client.post("/v1/tasks", json=body, headers={"Idempotency-Key": "k-1"})
        again = client.post("/v1/tasks", json=body, headers={"Idempotency-Key": "k-1"})
        other = client.post("/v1/tasks", json={"command": "echo twice"},
                            headers={"Idempotency-Key": "k-1"})
        listed = client.get("/v1/tasks").json()["tasks"]
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    assert [t["id"] for t in listed] == [first.json()["id"]]


def test_tasks_page_newest_first_and_filter_by_status(service: Service, alice: str) -> None:
    with service.client(alice) as client:
        ids = []
        for i in range(5):
            ids.append(client.post("/v1/tasks", json={"command": f"exit {i % 2}"}).json()["id"])
            wait_done(client, ids[-1])
        seen, cursor = [], None
        while True:
            page = client.get("/v1/tasks", params={"limit": 2, **(
                {"cursor": cursor} if cursor else {})}).json()
            seen += [t["id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]
        failed = client.get("/v1/tasks", params={"status": "FAILED"}).json()["tasks"]
        assert [t["id"] for t in failed] == [ids[3], ids[1]]
        assert client.get("/v1/tasks", params={"cursor": "t-nope"}).json()["field"] == "cursor"
        assert client.get("/v1/tasks", params={"status": "DONE"}).status_code == 422
        assert client.get("/v1/tasks", params={"limit": 1000}).status_code == 422


def test_cancel_stops_a_running_task(service: Service, alice: str) -> None:
    with service.client(alice) as client:
        task = client.post("/v1/tasks", json={"command": "echo started; sleep 60"}).json()
        wait_until(lambda: "started" in [line["text"] for line in client.get(
            f"/v1/tasks/{task['id']}/logs").json()["lines"]], "the task's first line")
        cancelled = client.post(f"/v1/tasks/{task['id']}/cancel")
        assert cancelled.status_code == 200
        done = wait_done(client, task["id"])
        result = client.get(f"/v1/tasks/{task['id']}/result").json()
    assert done["status"] == "STOPPED"
    assert result["reason"] == "cancelled by alice@example.com"


def test_too_many_tasks_not_ended_is_429_with_retry_after(service: Service,
                                                          alice: str) -> None:
    with service.client(alice) as client:
        started = [client.post("/v1/tasks", json={"command": "sleep 60"}).json()["id"]
                   for _ in range(3)]  # the limit the fixture set
        refused = client.post("/v1/tasks", json={"command": "true"})
        for task_id in started:
            client.post(f"/v1/tasks/{task_id}/cancel")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


def test_a_follow_up_of_a_command_task_is_refused_naming_why(service: Service,
                                                             alice: str) -> None:
    with service.client(alice) as client:
        task = client.post("/v1/tasks", json={"command": "true"}).json()
        wait_done(client, task["id"])
        answer = client.post(f"/v1/tasks/{task['id']}/follow-up", json={"prompt": "more"})
    assert answer.status_code == 422, answer.text


def test_tokens_are_listed_without_values_and_revoked(service: Service, alice: str) -> None:
    with service.client(alice) as client:
        made = client.post("/v1/tokens", json={"name": "ci", "scopes": ["tasks:read"]})
        assert made.status_code == 201
        value = made.json()["token"]
        listed = client.get("/v1/tokens").json()["tokens"]
        assert {t["name"] for t in listed} == {"laptop", "ci"}
        assert all("token" not in t and "token_hash" not in t for t in listed)
        assert client.post("/v1/tokens", json={"scopes": ["admin"]}).status_code == 422
        # An id past what a database integer holds is refused, not an error of the driver.
        assert client.delete("/v1/tokens/99999999999999999999").status_code == 422
        with service.client(value) as ci:
            assert ci.get("/v1/me").status_code == 200
            assert client.delete(f"/v1/tokens/{made.json()['id']}").status_code == 204
            assert ci.get("/v1/me").status_code == 401


def test_another_users_ids_are_404_on_every_route(service: Service, alice: str,
                                                  bob: str) -> None:
    with service.client(alice) as a, service.client(bob) as b:
        task = a.post("/v1/tasks", json={"command": "echo alice's"}).json()
        wait_done(a, task["id"])
        token_id = a.get("/v1/me").json()["token"]["id"]
        tries = [("GET", f"/v1/tasks/{task['id']}"), ("POST", f"/v1/tasks/{task['id']}/cancel"),
                 ("GET", f"/v1/tasks/{task['id']}/result"),
                 ("GET", f"/v1/tasks/{task['id']}/diff"),
                 ("GET", f"/v1/tasks/{task['id']}/diff/files"),
                 ("GET", f"/v1/tasks/{task['id']}/logs"),
                 ("GET", f"/v1/tasks/{task['id']}/events"),
                 ("GET", f"/v1/tasks/{task['id']}/files"),
                 ("GET", f"/v1/tasks/{task['id']}/files/result.json"),
                 ("DELETE", f"/v1/tokens/{token_id}")]
        # Every route of a task's is tried here (a new one cannot be left out).
        documented = {(method.upper(), path) for path, item in
                      a.get("/openapi.json").json()["paths"].items() if "{task_id}" in path
                      for method in item}
        tried = {(method, path.replace(task["id"], "{task_id}").replace(
            "files/result.json", "files/{name}")) for method, path in tries}
        assert documented - {("POST", "/v1/tasks/{task_id}/follow-up")} <= tried
        for method, path in tries:
            answer = b.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            # The same answer as for an id that does not exist.
            missing = b.request(method, path.replace(task["id"], "t-missing").replace(
                f"/{token_id}", "/999999"))
            assert missing.status_code == 404 and missing.json()["detail"] == answer.json()[
                "detail"]
        answer = b.post(f"/v1/tasks/{task['id']}/follow-up", json={"prompt": "x"})
        assert answer.status_code == 404
        assert b.get("/v1/tasks").json()["tasks"] == []
        assert b.get("/v1/tasks", params={"cursor": task["id"]}).status_code == 422
        assert b.get("/v1/usage").json()["tasks"] == 0
        # Alice's token still works: Bob's delete did nothing.
        assert a.get("/v1/me").status_code == 200


def test_a_hostile_task_id_in_the_path_is_a_plain_404(service: Service, alice: str) -> None:
    with service.client(alice) as client:
        for task_id in ("..%2F..%2Fetc", "t-1%0A", "%00", "a" * 300):
            assert client.get(f"/v1/tasks/{task_id}").status_code == 404


def test_the_admin_cli_refuses_bad_input_naming_the_field(
        service: Service, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "add", "not-an-email"]) == 2
    assert "email: got 'not-an-email'" in capsys.readouterr().err
    admin("users", "add", "carol@example.com")
    assert main(["users", "add", "Carol@example.com"]) == 2  # the same address
    assert main(["tokens", "create", "nobody@example.com"]) == 2
    assert main(["tokens", "create", "carol@example.com", "--scope", "root"]) == 2
    assert "scopes" in capsys.readouterr().err


def test_db_upgrade_reports_the_revision(service: Service,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from rclaude_infra.service.store import head_revision

    assert main(["db", "upgrade", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"revision": head_revision()}
    assert head_revision() >= "0005"


def test_a_database_of_an_older_revision_is_upgraded_keeping_its_rows(
        database_url: str) -> None:
    from sqlalchemy import text

    from rclaude_infra.service import ServiceSettings
    from rclaude_infra.service.store import head_revision, make_engine, migrate

    engine = make_engine(ServiceSettings(database_url=database_url))
    try:
        assert migrate(engine, "0001") == "0001"
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO users (id, email, is_admin, created_at) VALUES "
                "(1, 'old@example.com', false, '2026-11-01 00:00:00+00')"))
            connection.execute(text(
                "INSERT INTO tasks (id, user_id, request_hash, spec, created_at) VALUES "
                "('t-old', 1, 'h', '{}', '2026-11-01 00:00:00+00')"))
        assert migrate(engine) == head_revision()
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT id, user_id, final_status FROM tasks")).one()
        assert tuple(row) == ("t-old", 1, None)
    finally:
        engine.dispose()


def test_serve_starts_from_the_command_line(tmp_path: Path) -> None:
    """``rclaude-infra serve`` in its own process, on the embedded default."""
    import os
    import sys
    import time

    import httpx
    from loopback import free_port

    port = free_port()
    env = {**os.environ, "RCLAUDE_HOME": str(tmp_path / "home")}
    env.pop("RCLAUDE_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "rclaude_infra", "serve", "--port",
                                str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200
        assert (tmp_path / "home" / "service" / "service.db").is_file()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _events(client: Any, task_id: str, last: str | None = None) -> list[tuple[str, str, Any]]:
    """Every (id, event, data) of the task's event stream, to its end."""
    import json

    found: list[tuple[str, str, Any]] = []
    headers = {"Last-Event-ID": last} if last else {}
    with client.stream("GET", f"/v1/tasks/{task_id}/events", headers=headers) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in answer.iter_lines():
            if not line:
                if fields:
                    found.append((fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
    return found


def test_events_follow_a_task_to_its_end_and_resume_without_gaps(service: Service,
                                                                   alice: str) -> None:
    with service.client(alice) as client:
        task = client.post("/v1/tasks", json={
            "command": "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done"}).json()
        events = _events(client, task["id"])
        logs = [data["text"] for _, kind, data in events if kind == "log"]
        assert [t for t in logs if t.startswith("line ")] == [f"line {i}" for i in range(1, 6)]
        statuses = [data["status"] for _, kind, data in events if kind == "status"]
        assert statuses[-1] == "SUCCEEDED" and len(statuses) == len(set(statuses))
        assert events[-1][1] == "status"  # it ends after the end
        # From any event on: exactly what followed it.
        for cut in (0, 2, len(events) // 2, len(events) - 1):
            rest = _events(client, task["id"], last=events[cut][0])
            assert [(k, d) for _, k, d in rest if k == "log"] == [
                (k, d) for _, k, d in events[cut + 1:] if k == "log"]
            # A status is said as a look finds it: the one the id names is not said
            # again, and the stream ends with the task's end.
            said = events[cut][0].split("-", 1)[1]
            resumed = [d["status"] for _, k, d in rest if k == "status"]
            assert said not in resumed or (said == "" and resumed)
            assert resumed[-1:] == ["SUCCEEDED"] or (said == "SUCCEEDED" and not rest)
        bad = client.get(f"/v1/tasks/{task['id']}/events", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 422 and bad.json()["field"] == "Last-Event-ID"


def test_another_users_events_are_404(service: Service, alice: str, bob: str) -> None:
    with service.client(alice) as a, service.client(bob) as b:
        task = a.post("/v1/tasks", json={"command": "true"}).json()
        assert b.get(f"/v1/tasks/{task['id']}/events").status_code == 404


def test_a_hundred_and_twenty_requests_at_once_all_answer(service: Service,
                                                          alice: str) -> None:
    """More requests than worker threads and pooled connections: each is answered (a
    session ended on a route thread once deadlocked them all)."""
    import asyncio

    import httpx

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=service.url, timeout=30,
                                     limits=httpx.Limits(max_connections=200),
                                     headers={"Authorization": f"Bearer {alice}"}) as client:
            answers = await asyncio.gather(*(client.get("/v1/tasks") for _ in range(120)))
        return [a.status_code for a in answers]

    assert asyncio.run(main()) == [200] * 120


@pytest.mark.rate_limit(5)
def test_requests_over_the_minutes_limit_are_429_across_processes(
        service: Service, alice: str, bob: str) -> None:
    """Two service processes on one database hold one limit per user."""
    import time

    from conftest import new_app, started

    if time.time() % 60 > 50:  # all of it in one minute's window
        time.sleep(61 - time.time() % 60)
    with started(new_app(service.requests_per_minute)) as other_url, \
            service.client(alice) as here:
        import httpx

        there = httpx.Client(base_url=other_url, timeout=60,
                             headers={"Authorization": f"Bearer {alice}"})
        answers = [(here if i % 2 else there).get("/v1/me") for i in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
        over = there.get("/v1/me")
        there.close()
    assert over.status_code == 429 and over.headers["content-type"] == (
        "application/problem+json")
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["ratelimit-limit"] == "5"
    with service.client(bob) as other_user:
        assert other_user.get("/v1/me").status_code == 200  # each user has their own


def test_secrets_are_write_only_encrypted_and_reach_only_their_owners_tasks(
        service: Service, alice: str, bob: str, tmp_path: Path) -> None:
    import hashlib

    from sqlalchemy import create_engine, text

    value = "tok-alice-0042-secret"
    with service.client(alice) as a, service.client(bob) as b:
        assert a.put("/v1/secrets/DEPLOY_TOKEN", json={"value": "first"}).status_code == 201
        updated = a.put("/v1/secrets/DEPLOY_TOKEN", json={"value": value})
        assert updated.status_code == 200 and set(updated.json()) == {
            "name", "created_at", "updated_at"}
        assert [x["name"] for x in a.get("/v1/secrets").json()["secrets"]] == ["DEPLOY_TOKEN"]
        assert "value" not in a.get("/v1/secrets/DEPLOY_TOKEN").json()
        assert a.put("/v1/secrets/not a name", json={"value": "x"}).json()["field"] == "name"
        # Another user: 404 for her secret, and his task cannot name it.
        assert b.get("/v1/secrets/DEPLOY_TOKEN").status_code == 404
        assert b.delete("/v1/secrets/DEPLOY_TOKEN").status_code == 404
        refused = b.post("/v1/tasks", json={"command": "true", "secrets": ["DEPLOY_TOKEN"]})
        assert refused.status_code == 422 and refused.json()["field"] == "secrets"
        # Her task gets it as an environment variable.
        task = a.post("/v1/tasks", json={"command": 'printf %s "$DEPLOY_TOKEN" | sha256sum',
                                         "secrets": ["DEPLOY_TOKEN"]}).json()
        assert wait_done(a, task["id"])["status"] == "SUCCEEDED"
        lines = [x["text"] for x in a.get(f"/v1/tasks/{task['id']}/logs").json()["lines"]]
        assert any(x.startswith(hashlib.sha256(value.encode()).hexdigest()) for x in lines)
        for path in (tmp_path / "home").rglob("*"):
            if path.is_file() and path.suffix != ".key":
                assert value.encode() not in path.read_bytes(), path
        # At rest: ciphertext only, bound to its owner and name.
        engine = create_engine(service.database_url)
        with engine.begin() as connection:
            sealed = connection.execute(text("SELECT ciphertext FROM user_secrets")).scalar_one()
            assert value not in sealed
            bob_id = connection.execute(text(
                "SELECT id FROM users WHERE email = 'bob@example.com'")).scalar_one()
            connection.execute(text(
                "INSERT INTO user_secrets (user_id, name, ciphertext, created_at, updated_at) "
                "VALUES (:u, 'DEPLOY_TOKEN', :c, '2026-12-01 00:00:00+00', "
                "'2026-12-01 00:00:00+00')"), {"u": bob_id, "c": sealed})
        engine.dispose()
        # The name is his now, so the task is taken; it fails to start, saying why.
        copied = b.post("/v1/tasks", json={"command": "true", "secrets": ["DEPLOY_TOKEN"]})
        assert copied.status_code == 201
        ended = wait_done(b, copied.json()["id"])
        assert ended["status"] == "FAILED" and "put it again" in ended["reason"]
        assert value not in ended["reason"]
        assert a.delete("/v1/secrets/DEPLOY_TOKEN").status_code == 204
        assert a.get("/v1/secrets").json()["secrets"] == []
    key = tmp_path / "home" / "service" / "secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_the_migrations_make_the_models_tables(database_url: str) -> None:
    """What ``migrate`` makes is what the models describe: no column, index or constraint
    only on one side (a model changed without its migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from rclaude_infra.service import ServiceSettings
    from rclaude_infra.service.models import Base
    from rclaude_infra.service.store import make_engine, migrate

    engine = make_engine(ServiceSettings(database_url=database_url))
    try:
        migrate(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection),
                                           Base.metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_a_task_never_sees_the_services_own_keys(database_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's task runs what it likes and prints its environment: the service's
    secrets' key, database URL and OAuth secrets are not in it (the local provider
    withholds them)."""
    from cryptography.fernet import Fernet

    from conftest import new_app, started

    kept = {"RCLAUDE_SECRETS_KEY": Fernet.generate_key().decode(),
            "RCLAUDE_GITHUB_CLIENT_ID": "Iv1.x", "RCLAUDE_GITHUB_CLIENT_SECRET": "gh-s3cret-9",
            "RCLAUDE_GOOGLE_CLIENT_ID": "g.apps", "RCLAUDE_GOOGLE_CLIENT_SECRET": "go-s3cret-7"}
    monkeypatch.setenv("RCLAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RCLAUDE_DATABASE_URL", database_url)
    for key, value in kept.items():
        monkeypatch.setenv(key, value)
    with started(new_app(1000)) as url:
        admin("users", "add", "mallory@example.com")
        token = admin("tokens", "create", "mallory@example.com").strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as client:
            task = client.post("/v1/tasks", json={"command": "env; cat /proc/$PPID/environ "
                                                  "| tr '\\0' '\\n'"}).json()
            assert wait_done(client, task["id"])["status"] in ("SUCCEEDED", "FAILED")
            printed = "\n".join(x["text"] for x in client.get(
                f"/v1/tasks/{task['id']}/logs").json()["lines"])
    assert "RCLAUDE_HOME" in printed  # it did print its environment
    for name in ("RCLAUDE_SECRETS_KEY", "RCLAUDE_GITHUB_CLIENT_SECRET",
                 "RCLAUDE_GOOGLE_CLIENT_SECRET"):
        assert kept[name] not in printed and name not in printed
    assert database_url.split("//", 1)[1] not in printed


def test_a_tasks_files_are_listed_and_served_and_hostile_names_are_not(
        service: Service, alice: str, bob: str) -> None:
    """What a task leaves in its artifacts is served by the names it was listed under; a
    link out of the task's folder is not followed, and another user gets a 404."""
    with service.client(alice) as a, service.client(bob) as b:
        task = a.post("/v1/tasks", json={"command": (
            'printf "report body" > "$RCLAUDE_ARTIFACTS/report one.txt"; '
            'ln -s /etc/passwd "$RCLAUDE_ARTIFACTS/passwd"')}).json()
        assert wait_done(a, task["id"])["status"] == "SUCCEEDED"
        listed = a.get(f"/v1/tasks/{task['id']}/files").json()
        names = {f["name"] for f in listed["files"]}
        assert "artifacts/report one.txt" in names and "result.json" in names
        assert not any("passwd" in name for name in names)
        assert any("passwd" in s["name"] for s in listed["skipped"])
        got = a.get(f"/v1/tasks/{task['id']}/files/artifacts/report one.txt")
        assert got.status_code == 200 and got.content == b"report body"
        assert got.headers["content-disposition"].startswith("attachment;")
        for name in ("artifacts/passwd", "../../../etc/passwd", "artifacts/%2e%2e/x"):
            assert a.get(f"/v1/tasks/{task['id']}/files/{name}").status_code == 404, name
        assert b.get(f"/v1/tasks/{task['id']}/files").status_code == 404
        assert b.get(f"/v1/tasks/{task['id']}/files/result.json").status_code == 404


def test_the_admin_overview_shows_users_plan_and_live_status(
        service: Service, alice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    admin("users", "add", "root@example.com", "--admin")
    root = admin("tokens", "create", "root@example.com", "--scope", "admin").strip()
    with service.client(alice) as client, service.client(root) as boss:
        assert client.get("/v1/admin/overview").status_code == 403
        task = client.post("/v1/tasks", json={"command": "sleep 300"}).json()
        from waiting import wait_until

        def counted() -> bool:
            status = boss.get("/v1/admin/overview").json()["deployment"]["status"]
            return status["tasks_not_ended"] == 1
        wait_until(counted, "the running task in the live status", 30)
        overview = boss.get("/v1/admin/overview").json()
        deployment = overview["deployment"]
        assert deployment["provider"] == "local" and deployment["status"]["error"] is None
        assert deployment["plan"]["instance_types"] and "spot" in deployment["plan"]
        assert {u["email"]: u["tasks_this_month"] for u in overview["users"]} == {
            "alice@example.com": 1, "root@example.com": 0}
        alice_row = next(u for u in overview["users"] if u["email"] == "alice@example.com")
        assert (alice_row["plan"], alice_row["executions"], alice_row["allowance"]) == (
            "free", 1, None)
        assert client.post(f"/v1/tasks/{task['id']}/cancel").status_code == 200

        from rclaude_infra import Deployment

        def unreachable(self: Deployment) -> None:
            raise ConnectionError("cluster unreachable")
        monkeypatch.setattr(Deployment, "status", unreachable)
        status = boss.get("/v1/admin/overview").json()["deployment"]["status"]
        assert status == {"error": "ConnectionError: cluster unreachable"}


def test_sqlite_writers_take_turns_and_every_way_out_gives_the_turn_back(
        tmp_path: Path) -> None:
    """Writers of one process take turns from their first write to its end (store.py);
    a commit, a rollback, and a connection closed or handed back mid-transaction each
    give the turn back, and two threads writing at once both commit."""
    import threading

    from sqlalchemy import create_engine, text

    from rclaude_infra.service.store import _writers_take_turns

    engine = create_engine(f"sqlite:///{tmp_path / 'turns.db'}",
                           connect_args={"check_same_thread": False, "timeout": 30})
    turns = _writers_take_turns(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    assert turns.acquire(blocking=False)  # the DDL is not a write's turn; nothing held
    turns.release()

    def free() -> bool:
        taken = turns.acquire(blocking=False)
        if taken:
            turns.release()
        return taken

    with engine.begin() as connection:  # commit
        connection.execute(text("INSERT INTO t VALUES (1)"))
        assert not free()  # held from the first write
    assert free()
    connection = engine.connect()  # rollback
    connection.execute(text("UPDATE t SET n = 2"))
    connection.rollback()
    assert free()
    connection.execute(text("DELETE FROM t"))  # handed back to the pool mid-transaction
    connection.close()
    assert free()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with engine.begin() as c:
                c.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
        except BaseException as exc:  # reported below, in this thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and free()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar() == 9
    engine.dispose()
