"""The service's overhead and its followers' memory.

Run: python benchmarks/bench_service.py [--requests 2000] [--concurrency 16] [--followers 1000]
[--postgres]

1. Requests per second and p99 latency of ``GET /v1/tasks/{id}`` and ``POST /v1/tasks``
   on the service (uvicorn, one process, SQLite, the local provider; a command task), side
   by side with a bare FastAPI app (same uvicorn) whose routes return the same JSON with no
   token check, database or task store. Target: the service's p99 at most 3x the bare
   route's. ``POST`` records a real task each time: once on a ``serve --no-dispatch``
   process (the API's own cost; workers elsewhere start the tasks), once on a process
   whose own dispatcher starts each (a runner process) beside the requests, so that load
   includes those starts on the same two cores.
2. The resident memory of the service process with ``--followers`` event streams of one
   running task open at once (``GET /v1/tasks/{id}/events``), against the same process
   before they opened. Target: at most 200 MB more.

Both servers run in processes of their own on loopback; the clients are httpx's async
client in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from loopback import free_port

BARE = textwrap.dedent("""
    import sys, uvicorn
    from fastapi import FastAPI
    body = {"id": "t-20261204-000000-abcdef", "created_at": "2026-12-04T00:00:00+00:00",
            "prompt": None, "command": "true", "repo": None, "ref": None,
            "status": "SUCCEEDED", "reason": None, "exit_code": 0, "attempt": 1,
            "started_at": "2026-12-04T00:00:00+00:00",
            "stopped_at": "2026-12-04T00:00:01+00:00"}
    app = FastAPI()
    @app.get("/v1/tasks/{task_id}")
    def get(task_id: str) -> dict:
        return body
    @app.post("/v1/tasks", status_code=201)
    def post(payload: dict) -> dict:
        return body
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""")


def start(argv: list[str], url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit(f"{argv} did not start") from None
            time.sleep(0.1)


async def load(base: str, method: str, path: str, body: dict[str, Any] | None,
               token: str | None, requests: int, concurrency: int) -> tuple[float, float]:
    """Requests per second and the p99 latency in milliseconds."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=60) as client:
        async def worker() -> None:
            for _ in queue:
                began = time.perf_counter()
                answer = await client.request(method, path, json=body)
                latencies.append(time.perf_counter() - began)
                assert answer.status_code < 300, answer.text

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return requests / elapsed, statistics.quantiles(latencies, n=100)[98] * 1000


async def follow(base: str, token: str, task_id: str, followers: int,
                 pid: int) -> tuple[float, float]:
    """The service's RSS (MB) before and with ``followers`` streams open."""
    process = psutil.Process(pid)
    before = process.memory_info().rss / 2**20
    limits = httpx.Limits(max_connections=followers + 10)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        opened = asyncio.Event()
        count = 0

        async def one() -> None:
            nonlocal count
            async with client.stream("GET", f"/v1/tasks/{task_id}/events") as answer:
                count += 1
                if count == followers:
                    opened.set()
                async for _ in answer.aiter_bytes():
                    pass

        tasks = [asyncio.create_task(one()) for _ in range(followers)]
        await asyncio.wait_for(opened.wait(), timeout=300)
        await asyncio.sleep(5)  # every stream past its first looks
        peak = process.memory_info().rss / 2**20
        for task in tasks:
            task.cancel()
    return before, peak


def home(cli: list[str], database_url: str | None = None) -> tuple[dict[str, str], str]:
    """A fresh home and database (SQLite in it, unless ``database_url``) with a user;
    their environment and token."""
    folder = Path(tempfile.mkdtemp(prefix="rclaude-bench-service-"))
    env = {**os.environ, "RCLAUDE_HOME": str(folder),
           "RCLAUDE_DATABASE_URL": database_url or f"sqlite:///{folder / 'service.db'}"}
    subprocess.run([*cli, "users", "add", "bench@example.com"], env=env, check=True,
                   capture_output=True)
    # A plan that limits nothing the run does: the quota's claim is still made per task.
    subprocess.run([*cli, "users", "plan", "bench@example.com", "enterprise",
                    "--executions", "10000000", "--concurrency", "100000"], env=env,
                   check=True, capture_output=True)
    token = subprocess.run([*cli, "tokens", "create", "bench@example.com"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    return env, token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true",
                        help="the service on a PostgreSQL started here (Debian's binaries) "
                        "instead of SQLite")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        database_url = None
        if args.postgres:
            from postgres_server import new_database, postgres

            folder = Path(tempfile.mkdtemp(prefix="rclaude-bench-postgres-"))
            admin_url = stack.enter_context(postgres(folder))
            database_url = new_database(admin_url)
        measure(args, database_url, database_url and new_database(admin_url))


def measure(args: argparse.Namespace, database_url: str | None,
            api_database_url: str | None) -> None:
    cli = [sys.executable, "-m", "rclaude_infra"]
    env, token = home(cli, database_url)
    # Its own database: no dispatcher starts its tasks.
    api_env, api_token = home(cli, api_database_url)
    ours, bare = free_port(), free_port()
    service = start([*cli, "serve", "--port", str(ours), "--max-concurrent-tasks", "100000",
                     "--requests-per-minute", "1000000"], f"http://127.0.0.1:{ours}/healthz",
                    env)
    plain = start([sys.executable, "-c", BARE, str(bare)], f"http://127.0.0.1:{bare}/docs",
                  env)
    # The same service answering the API only (its tasks for `rclaude-infra worker`
    # processes, elsewhere): the requests' own cost, without runners starting beside them.
    api_port = free_port()
    api_only = start([*cli, "serve", "--port", str(api_port), "--no-dispatch",
                      "--max-concurrent-tasks", "100000", "--requests-per-minute",
                      "1000000"], f"http://127.0.0.1:{api_port}/healthz", api_env)
    try:
        base, bare_base = f"http://127.0.0.1:{ours}", f"http://127.0.0.1:{bare}"
        api_base = f"http://127.0.0.1:{api_port}"
        task = httpx.post(f"{base}/v1/tasks", json={"command": "true"},
                          headers={"Authorization": f"Bearer {token}"}).json()
        time.sleep(1)
        rows = []
        for name, server, key, method, path, body, requests in (
                ("GET /v1/tasks/{id}", base, token, "GET", f"/v1/tasks/{task['id']}", None,
                 args.requests),
                ("POST /v1/tasks (API only)", api_base, api_token, "POST", "/v1/tasks",
                 {"command": "true"}, args.requests // 2),
                ("POST /v1/tasks", base, token, "POST", "/v1/tasks", {"command": "true"},
                 args.requests // 10)):
            # The bare route first: the runners the service's POSTs start keep the machine
            # busy for a while after them.
            bare_rps, bare_p99 = asyncio.run(load(bare_base, method, path, body, None,
                                                  requests, args.concurrency))
            ours_rps, ours_p99 = asyncio.run(load(server, method, path, body, key,
                                                  requests, args.concurrency))
            rows.append((name, ours_rps, ours_p99, bare_rps, bare_p99))
        for name, ours_rps, ours_p99, bare_rps, bare_p99 in rows:
            ratio = ours_p99 / bare_p99
            print(f"{name:26} service {ours_rps:7.1f} req/s p99 {ours_p99:7.1f} ms | bare "
                  f"{bare_rps:7.1f} req/s p99 {bare_p99:6.1f} ms | p99 x{ratio:.1f} "
                  f"(target <= 3x): {'met' if ratio <= 3 else 'NOT met'}")
        running = httpx.post(f"{base}/v1/tasks", json={"command": "sleep 600"},
                             headers={"Authorization": f"Bearer {token}"}).json()
        before, peak = asyncio.run(follow(base, token, running["id"], args.followers,
                                          service.pid))
        print(f"{args.followers} event followers: service RSS {before:.0f} MB -> {peak:.0f} MB"
              f" (+{peak - before:.0f} MB, target <= 200 MB): "
              f"{'met' if peak - before <= 200 else 'NOT met'}")
        print(json.dumps({"rows": rows, "followers": [before, peak]}))
    finally:
        for process in (service, plain, api_only):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
