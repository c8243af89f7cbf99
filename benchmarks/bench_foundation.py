"""Foundation speed: import cost and offline plan time.

Run: python benchmarks/bench_foundation.py [--repeat N]

Each measurement runs in a fresh interpreter, so module caches do not flatter it.
Targets (issue 2): ``import rclaude_infra`` under 0.3x ``import pulumi``; ``plan()`` of
the default config under 3 s on a CI-sized machine (2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_IMPORT = """
import json, time
t = time.perf_counter()
import {module}
print(json.dumps(time.perf_counter() - t))
"""

_PLAN = """
import json, time
from rclaude_infra import DeploymentConfig, plan
cfg = DeploymentConfig()
t = time.perf_counter(); plan(cfg); cold = time.perf_counter() - t
t = time.perf_counter(); p = plan(cfg); warm = time.perf_counter() - t
print(json.dumps([cold, warm, len(p.stack_resources)]))
"""


def _run(code: str) -> object:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    ours = [float(_run(_IMPORT.format(module="rclaude_infra"))) for _ in range(args.repeat)]
    pulumi = [float(_run(_IMPORT.format(module="pulumi"))) for _ in range(args.repeat)]
    plans = [_run(_PLAN) for _ in range(max(1, args.repeat // 2))]
    cold = statistics.median(p[0] for p in plans)  # type: ignore[index]
    warm = statistics.median(p[1] for p in plans)  # type: ignore[index]
    resources = plans[0][2]  # type: ignore[index]

    ratio = statistics.median(ours) / statistics.median(pulumi)
    rows = [
        ("import rclaude_infra (median)", f"{statistics.median(ours) * 1000:.1f} ms", ""),
        ("import pulumi (median)", f"{statistics.median(pulumi) * 1000:.1f} ms", ""),
        ("ratio", f"{ratio:.3f}x", "target < 0.3x: " + ("met" if ratio < 0.3 else "MISSED")),
        ("plan() default config, first in process", f"{cold:.2f} s",
         "target < 3 s: " + ("met" if cold < 3 else "MISSED")),
        ("plan() again, same process", f"{warm:.2f} s", ""),
        ("resources in the default plan", str(resources), ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
