"""The real path on your AWS account: check, deploy, run one task, read what it left,
and tear everything down again.

Needs AWS credentials (``aws configure`` / ``aws sso login``), the Pulumi CLI (or
``--install-pulumi``) and ``ANTHROPIC_API_KEY`` for prompts. No Docker: the runner image
is built in the account with CodeBuild (``--local-docker`` builds it here instead,
``--image`` uses a prebuilt one). It stops after the check when something is missing,
before creating anything.

    python examples/aws_quickstart.py --command "uname -a"
    python examples/aws_quickstart.py --prompt "Add a test for add()" --repo https://github.com/me/app
    python examples/aws_quickstart.py --keep     # leave the stack up afterwards
"""

from __future__ import annotations

import argparse
import sys

from rclaude_infra import Deployment, DeploymentConfig, TaskSpec, Usage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--command", default=None)
    what.add_argument("--prompt", default=None)
    parser.add_argument("--repo")
    parser.add_argument("--name", default="quickstart")
    parser.add_argument("--region", default="us-east-1")
    image = parser.add_mutually_exclusive_group()
    image.add_argument("--image", help="a prebuilt runner image (no build at all)")
    image.add_argument("--local-docker", action="store_true",
                       help="build the runner image with Docker here, not with CodeBuild")
    parser.add_argument("--install-pulumi", action="store_true")
    parser.add_argument("--keep", action="store_true", help="do not destroy at the end")
    args = parser.parse_args(argv)

    build: dict[str, object] = ({"image": args.image, "build_image": False} if args.image
                                 else {"build_image": True} if args.local_docker
                                 else {"build_image": "remote"})
    # A couple of tasks a day: the model ($1.30 a task assumed) is most of the budget.
    config = DeploymentConfig(region=args.region, max_monthly_usd=100,
                              usage=Usage(tasks_per_day=2), **build)
    d = Deployment(args.name, config, install_pulumi=args.install_pulumi)

    report = d.check()
    print(report)
    if not report.ok:
        print("\nFix the problems above first; nothing was created.", file=sys.stderr)
        return 1
    estimate = d.estimate_cost()
    print(f"About ${estimate.idle_monthly:.2f}/month idle, ${estimate.per_task or 0:.4f} per task "
          f"(the model ${estimate.model_monthly:.2f} of ${estimate.monthly:.2f} a month).")

    outputs = d.up()  # refuses over budget or on a mandatory policy violation
    print(f"Deployed: cluster {outputs.cluster_name}, results in s3://{outputs.bucket}")
    try:
        spec = (TaskSpec(prompt=args.prompt, repo=args.repo) if args.prompt else
                TaskSpec(command=args.command or "uname -a", repo=args.repo))
        task = d.run_task(spec)
        print(f"Task {task.task_id}: waiting for capacity, then its output:")
        for line in task.logs(follow=True):
            print(f"  {line}")
        state = task.wait()
        cost = task.cost()
        print(f"{state.status.value} (exit code {state.exit_code}); cost ${cost:.4f} "
              f"(compute ${cost.compute_usd:.4f}, model ${cost.model_usd or 0:.4f})")
        files = task.result().download("quickstart-results")
        print(f"{len(files)} files in quickstart-results/{task.task_id}/")
    finally:
        if not args.keep:
            d.destroy(remove=True)
            print("Destroyed; sweep for leftovers:", d.sweep(known=(), dry_run=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
