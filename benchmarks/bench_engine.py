"""How many `pulumi` processes each Deployment operation starts.

Run: python benchmarks/bench_engine.py

Counted at the Automation API's boundary with the recording PulumiCommand of the tests
(tests/fake_pulumi.py): every invocation the wrapper would make, on a new stack, then on
the same Deployment object. A real PulumiCommand adds one `pulumi version` per
Deployment (it is created once and reused).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_pulumi import FakePulumi

from rclaude_infra import Deployment, DeploymentConfig


def main() -> int:
    os.environ["RCLAUDE_HOME"] = tempfile.mkdtemp(prefix="rclaude-bench-")
    # up() looks for ECS's service-linked role before the engine runs: moto answers.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_dispatch import start_moto

    server, endpoint = start_moto()
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    try:
        return _count_processes()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _count_processes() -> int:
    fake = FakePulumi()
    d = Deployment("dev", DeploymentConfig(), pulumi_command=fake, api_key="sk-ant-bench")
    rows = []

    def count(label: str, action: object) -> None:
        start, own = len(fake.calls), len(fake.stdin_calls)
        action()  # type: ignore[operator]
        verbs = fake.verbs()[start:]
        # What the engine runs as the CLI itself: the credential on stdin.
        verbs += [" ".join(c["args"][:2]) + " (stdin)" for c in fake.stdin_calls[own:]]
        rows.append((label, len(verbs), ", ".join(verbs) or "-"))

    count("up (new stack)", lambda: d.up(progress=False))
    count("up again, same Deployment", lambda: d.up(progress=False))
    count("preview", lambda: d.preview(progress=False))
    count("outputs (after up)", lambda: d.outputs)
    fresh = Deployment("dev", DeploymentConfig(), pulumi_command=fake)
    count("outputs (new Deployment)", lambda: fresh.outputs)
    # Without AWS here: the tasks destroy stops first (ECS calls) are not counted.
    count("destroy", lambda: d.destroy(progress=False, stop_tasks=False))
    width = max(len(r[0]) for r in rows)
    for label, n, verbs in rows:
        print(f"{label:<{width}}  {n:>2} processes  {verbs}")
    print("not counted here: the `pulumi version` that PulumiCommand() runs once per "
          "Deployment with a real CLI (read from the SDK, not measured)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
