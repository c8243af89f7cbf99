"""The runner in its container: the spec from the task's S3 prefix, the task's own
secrets from Secrets Manager, the outputs back to S3 (:mod:`rclaude_infra.tasks.runner`
runs the task itself)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..tasks.layout import (
    CHECKPOINT_FILES,
    PREEMPTED_EXIT,
    PREVIOUS_DIR,
    RESULT_FILE,
    SPEC_FILE,
)
from ..tasks.runner import run
from . import default_session, task_secrets
from .s3_tasks import (
    download_files,
    download_resume_inputs,
    key,
    upload_files,
    upload_outputs,
)


def run_from_s3(bucket: str, task_id: str, work_root: Path) -> int:
    """The container's entry: the spec from ``s3://bucket/tasks/<id>/``, the outputs back."""
    session = default_session()  # in the container: the task role's credentials
    s3 = session.client("s3")
    task_dir = work_root / task_id
    task_dir.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key(task_id, SPEC_FILE), str(task_dir / SPEC_FILE))
    spec = json.loads((task_dir / SPEC_FILE).read_text())
    if spec.get("resume_from") or spec.get("apply_from"):
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
    # An earlier attempt's result and last checkpoint: where a preempted task goes on from.
    download_files(s3, bucket, task_id, (RESULT_FILE, *CHECKPOINT_FILES),
                   task_dir / PREVIOUS_DIR)
    code = run(task_dir, checkpoint=lambda path: upload_files(
        s3, bucket, task_id, path, CHECKPOINT_FILES))
    upload_outputs(s3, bucket, task_id, task_dir)
    # A preempted run is not the task's end: its next attempt needs the secrets too.
    if secrets is not None and code != PREEMPTED_EXIT:
        try:
            task_secrets.delete(secrets, deployment, task_id)
        except Exception as exc:  # the submitter's next step deletes it then
            print(f"[runner] could not delete the task's secrets: {exc}", file=sys.stderr)
    return code
