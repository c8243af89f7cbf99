"""Cost estimate speed: how long estimate_cost takes on a plan (and on a service-mode
plan), and the whole CLI verb.

Run: python benchmarks/bench_cost.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from rclaude_infra import DeploymentConfig, PriceBook, Usage, estimate_cost, plan


def main() -> int:
    p = plan(DeploymentConfig(nat="single", min_instances=1))
    prices = PriceBook.snapshot()
    runs = 2000
    start = time.perf_counter()
    for i in range(runs):
        estimate_cost(p, Usage(tasks_per_day=i % 100, concurrency=1 + i % 7), prices)
    per = (time.perf_counter() - start) / runs
    # A fresh process, first with an empty plan cache (the program runs), then again
    # (the plan is read from the cache: no Pulumi import).
    times = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "RCLAUDE_PLAN_CACHE": cache}
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rclaude_infra", "cost", "--json"],
                           check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - start)
    # Service mode: the offline plan of the stack with the service on it, and its estimate.
    start = time.perf_counter()
    service = plan(DeploymentConfig(nat="single", mode="service",
                                    service={"http_only": True}))
    service_plan = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(runs):
        estimate_cost(service, None, prices)
    service_per = (time.perf_counter() - start) / runs
    print(f"estimate_cost on a {len(p)}-resource plan   {per * 1e6:8.1f} us per estimate")
    print(f"plan(mode='service'), {len(service)} resources     {service_plan:8.2f} s (mocks, "
          "in process)")
    print(f"estimate_cost on it                        {service_per * 1e6:8.1f} us per "
          "estimate")
    print(f"rclaude-infra cost --json (fresh process)  {times[0]:8.2f} s, the program run")
    print(f"  again, the plan from the cache           {times[1]:8.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
