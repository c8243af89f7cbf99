"""The runner in its container: the spec from the task's S3 prefix (its run's folder, on
a stack whose task role allows only that), the task's own secrets from Secrets Manager,
the outputs back to S3 (:mod:`rclaude_infra.tasks.runner` runs the task itself)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..tasks.layout import (
    CHECKPOINT_FILES,
    INPUTS_FILE,
    PREEMPTED_EXIT,
    PREVIOUS_DIR,
    RESULT_FILE,
    SPEC_FILE,
)
from ..tasks.runner import run as run_task
from . import default_session, error_code, task_secrets
from .s3_tasks import (
    download_files,
    download_resume_inputs,
    key,
    read_json,
    upload_files,
    upload_outputs,
)

#: How long a run waits for its submitter to copy its inputs in (it does so right after
#: RunTask returns, long before a container starts; this covers a slow submitter).
INPUTS_WAIT_SECONDS = 300.0


def wait_for_inputs(s3: Any, bucket: str, task_id: str, run: str, *,
                    timeout: float = INPUTS_WAIT_SECONDS) -> dict[str, Any]:
    """What the submitter staged in the run's folder (``{"spec", "files"}``), once it is
    there. A key not there yet reads 404, or 403 where the role may not list the bucket."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            staged = read_json(s3, bucket, task_id, INPUTS_FILE, run=run)
        except ClientError as exc:
            if error_code(exc) not in ("AccessDenied", "403"):
                raise
            staged = None
        if staged is not None:
            return dict(staged)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the submitter did not copy this run's inputs to "
                               f"s3://{bucket}/{key(task_id, '', run)} within {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def run_from_s3(bucket: str, task_id: str, work_root: Path) -> int:
    """The container's entry: the spec from S3, the outputs back. On a stack that scopes
    runs (``RCLAUDE_RUN_SCOPED``), everything is in this run's folder, named by the task
    role session's ``aws:userid``; else in ``s3://bucket/tasks/<id>/``."""
    session = default_session()  # in the container: the task role's credentials
    s3 = session.client("s3")
    task_dir = work_root / task_id
    task_dir.mkdir(parents=True, exist_ok=True)
    run: str | None = None
    if os.environ.get("RCLAUDE_RUN_SCOPED") == "1":
        run = str(session.client("sts").get_caller_identity()["UserId"])
        staged = wait_for_inputs(s3, bucket, task_id, run)
        (task_dir / SPEC_FILE).write_text(json.dumps(staged["spec"], indent=2))
        download_files(s3, bucket, task_id, tuple(staged["files"]), task_dir, flatten=False,
                       run=run)
    else:
        s3.download_file(bucket, key(task_id, SPEC_FILE), str(task_dir / SPEC_FILE))
    spec = json.loads((task_dir / SPEC_FILE).read_text())
    if run is None and (spec.get("resume_from") or spec.get("apply_from")):
        download_resume_inputs(s3, bucket, task_id, task_dir)
    names = spec.get("secrets") or []
    deployment = os.environ.get("RCLAUDE_DEPLOYMENT", "")
    secrets = session.client("secretsmanager") if names else None
    if secrets is not None:
        # The task's own secret, read with the task role; into this process's environment
        # only, which the command inherits (never a file, the log or the result).
        try:
            os.environ.update(task_secrets.read(secrets, deployment, task_id))
        except Exception as exc:  # the runner reports the missing names as the reason
            print(f"[runner] could not read the task's secrets: {exc}", file=sys.stderr)
    if run is None:
        # An earlier attempt's result and last checkpoint: where a preempted task goes on
        # from (a scoped run has them staged under previous/).
        download_files(s3, bucket, task_id, (RESULT_FILE, *CHECKPOINT_FILES),
                       task_dir / PREVIOUS_DIR)
    code = run_task(task_dir, checkpoint=lambda path: upload_files(
        s3, bucket, task_id, path, CHECKPOINT_FILES, run=run))
    upload_outputs(s3, bucket, task_id, task_dir, run=run)
    # A preempted run is not the task's end: its next attempt needs the secrets too.
    if secrets is not None and code != PREEMPTED_EXIT:
        try:
            task_secrets.delete(secrets, deployment, task_id)
        except Exception as exc:  # the submitter's next step deletes it then
            print(f"[runner] could not delete the task's secrets: {exc}", file=sys.stderr)
    return code
