"""``python -m rclaude_infra.runner``: the entry of one task, locally and in the container.

``--task-dir DIR`` runs the task whose ``spec.json`` is in DIR
(:func:`rclaude_infra.tasks.runner.run`); ``--s3`` is the container's mode: the spec from
``s3://$RCLAUDE_BUCKET/tasks/$RCLAUDE_TASK_ID/`` and the outputs back
(:func:`rclaude_infra._aws.container.run_from_s3`). Task definitions and runner images name
this module, so it stays where it is.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .tasks.layout import SPEC_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rclaude_infra.runner",
                                     description="Run one rclaude task.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--task-dir", type=Path,
                       help="directory holding spec.json; outputs are written beside it")
    where.add_argument("--s3", action="store_true",
                       help="read the spec from s3://$RCLAUDE_BUCKET/tasks/$RCLAUDE_TASK_ID/ "
                       "and upload the outputs there (the container's mode)")
    parser.add_argument("--work-root", type=Path, default=Path("/workspace"),
                        help="with --s3: where the task directory is made")
    args = parser.parse_args(argv)
    if args.s3:
        bucket, task_id = os.environ.get("RCLAUDE_BUCKET"), os.environ.get("RCLAUDE_TASK_ID")
        if not bucket or not task_id:
            parser.error("--s3 needs RCLAUDE_BUCKET and RCLAUDE_TASK_ID in the environment")
        from ._aws.container import run_from_s3

        return run_from_s3(bucket, task_id, args.work_root)
    if not (args.task_dir / SPEC_FILE).is_file():
        parser.error(f"--task-dir: no {SPEC_FILE} in {args.task_dir}")
    from .tasks.runner import run

    return run(args.task_dir)


if __name__ == "__main__":
    sys.exit(main())
