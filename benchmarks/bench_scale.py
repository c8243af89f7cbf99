"""The service as its users grow: N simulated users each submit tasks at once to a service
whose tasks run on ECS, on moto's server (its own process, as AWS would be), and we report
how long a task waits to be started (dispatch latency: the task's record made to its
RunTask done) and the API's p99 while they submit and watch.

Run: python benchmarks/bench_scale.py [--users 10 100 1000] [--tasks-per-user 1]
[--postgres] [--workers 1]

For each N, on a fresh database and a fresh stack in moto: the users and their tokens are
made, the service starts (uvicorn in a process of its own; ``--workers W`` more
``rclaude-infra worker``-like dispatcher processes beside it on PostgreSQL), then each
user posts its tasks concurrently (64 connections) while another client lists tasks
(``GET /v1/tasks``) every 50 ms; we wait until every task has been started and read the
times from the database. Target (README): at 1,000 users, every task started within 60 s
and the API's p99 under 2 s on the CI machine's two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dispatch import start_moto
from loopback import free_port
from moto_stack import make_stack

SERVER = textwrap.dedent("""
    import json, os, sys
    import uvicorn
    from rclaude_infra import Deployment
    from rclaude_infra.service import ServiceSettings, create_app
    deployment = Deployment.from_outputs("bench", os.environ["BENCH_OUTPUTS"],
                                         poll_interval=5.0)
    settings = ServiceSettings.from_env(provider="ecs-ec2", dispatch=sys.argv[2] == "1",
                                        requests_per_minute=1_000_000)
    app = create_app(settings, deployment=deployment)
    if sys.argv[2] == "1" or sys.argv[3] == "api":
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    else:
        app.state.dispatcher.run_forever()
""")

PLANS = "[plans.free]\nconcurrency = 100\nservice_model_key = true\n"


def users_and_tokens(env: dict[str, str], n: int) -> list[str]:
    """``n`` users with a token each, made in the service's database directly."""
    code = textwrap.dedent(f"""
        import json
        from rclaude_infra.service import ServiceSettings, accounts
        from rclaude_infra.service.store import Database, make_engine, migrate
        engine = make_engine(ServiceSettings.from_env())
        migrate(engine)
        tokens = []
        with Database(engine).session() as session:
            for i in range({n}):
                user = accounts.add_user(session, f"user{{i}}@example.com")
                tokens.append(accounts.create_token(session, user, name="bench")[1])
        print(json.dumps(tokens))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def dispatch_latencies(env: dict[str, str]) -> list[float]:
    code = textwrap.dedent("""
        import json
        from sqlalchemy import select
        from rclaude_infra.service import ServiceSettings
        from rclaude_infra.service.models import TaskRecord
        from rclaude_infra.service.store import Database, make_engine
        engine = make_engine(ServiceSettings.from_env())
        with Database(engine).session() as session:
            rows = session.execute(select(TaskRecord.created_at, TaskRecord.dispatched_at))
            print(json.dumps([None if d is None else (d - c).total_seconds() for c, d in rows]))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    values = json.loads(out.stdout.strip().splitlines()[-1])
    return [v for v in values if v is not None] + [math.inf] * values.count(None)


async def load(base: str, tokens: list[str], per_user: int) -> tuple[list[float], list[float]]:
    """Every user's tasks posted at once; the POSTs' latencies, and the latencies of a
    watcher's task listings meanwhile."""
    posts: list[float] = []
    gets: list[float] = []
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        async def send(method: str, path: str, headers: dict[str, str],
                       **kwargs: Any) -> httpx.Response:
            # A kept-alive connection the server closed as it was reused: sent again (the
            # POST's Idempotency-Key makes that safe), as a careful client would.
            for attempt in range(3):
                try:
                    return await client.request(method, path, headers=headers, **kwargs)
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        async def user(token: str) -> None:
            for n in range(per_user):
                began = time.perf_counter()
                answer = await send("POST", "/v1/tasks", {
                    "Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{n}"},
                    json={"command": "true"})
                posts.append(time.perf_counter() - began)
                assert answer.status_code == 201, answer.text

        async def watcher() -> None:
            while not done.is_set():
                began = time.perf_counter()
                await send("GET", "/v1/tasks", {"Authorization": f"Bearer {tokens[0]}"})
                gets.append(time.perf_counter() - began)
                await asyncio.sleep(0.05)

        watching = asyncio.create_task(watcher())
        await asyncio.gather(*(user(t) for t in tokens))
        done.set()
        await watching
    return posts, gets


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(n: int, per_user: int, endpoint: str, database_url: str | None,
        workers: int) -> dict[str, Any]:
    import boto3

    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                            region_name="us-east-1")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    stack = make_stack(session, instances=max(1, math.ceil(n * per_user / 350)))
    folder = Path(tempfile.mkdtemp(prefix="rclaude-bench-scale-"))
    (folder / "plans.toml").write_text(PLANS)
    env = {**os.environ, "RCLAUDE_HOME": str(folder), "AWS_ENDPOINT_URL": endpoint,
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "RCLAUDE_PLANS_FILE": str(folder / "plans.toml"),
           "RCLAUDE_DATABASE_URL": database_url or f"sqlite:///{folder / 'service.db'}",
           "BENCH_OUTPUTS": json.dumps(stack.to_dict())}
    tokens = users_and_tokens(env, n)
    port = free_port()
    processes = [subprocess.Popen([sys.executable, "-c", SERVER, str(port), "1", "api"],
                                  env=env)]
    processes += [subprocess.Popen([sys.executable, "-c", SERVER, "0", "0", "worker"],
                                   env=env) for _ in range(workers)]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        began = time.perf_counter()
        posts, gets = asyncio.run(load(base, tokens, per_user))
        submitted = time.perf_counter() - began
        total = n * per_user
        deadline = time.monotonic() + 600
        while True:
            latencies = dispatch_latencies(env)
            if len([v for v in latencies if v != math.inf]) >= total:
                break
            assert time.monotonic() < deadline, "tasks were not all started in 10 minutes"
            time.sleep(1)
        return {"users": n, "tasks": total, "submit_s": submitted,
                "post_p50_ms": p(posts, 0.5) * 1000, "post_p99_ms": p(posts, 0.99) * 1000,
                "list_p99_ms": p(gets, 0.99) * 1000,
                "dispatch_p50_s": statistics.median(latencies),
                "dispatch_p99_s": p(latencies, 0.99), "dispatch_max_s": max(latencies)}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--tasks-per-user", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0,
                        help="dispatcher processes beside the service's own (PostgreSQL)")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    server, endpoint = start_moto()
    rows = []
    try:
        with contextlib.ExitStack() as stack:
            admin_url = None
            if args.postgres:
                from postgres_server import postgres

                admin_url = stack.enter_context(postgres(
                    Path(tempfile.mkdtemp(prefix="rclaude-bench-postgres-"))))
            for n in args.users:
                database_url = None
                if admin_url is not None:
                    from postgres_server import new_database

                    database_url = new_database(admin_url)
                row = run(n, args.tasks_per_user, endpoint, database_url, args.workers)
                rows.append(row)
                print(f"{n:>5} users {row['tasks']:>5} tasks | POST p50 "
                      f"{row['post_p50_ms']:7.1f} ms p99 {row['post_p99_ms']:7.1f} ms | "
                      f"GET /v1/tasks p99 {row['list_p99_ms']:7.1f} ms | dispatch p50 "
                      f"{row['dispatch_p50_s']:6.2f} s p99 {row['dispatch_p99_s']:6.2f} s "
                      f"max {row['dispatch_max_s']:6.2f} s", flush=True)
    finally:
        server.terminate()
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
