"""A task's S3 prefix: ``s3://<bucket>/tasks/<task_id>/`` holds its spec, its attempts
and, once the runner is done, its outputs (the same layout as a local task directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..tasks.layout import (
    ARTIFACTS_DIR,
    OUTPUT_FILES,
    RESULT_FILE,
    RESUME_DIR,
    RESUME_INPUTS,
    SPEC_FILE,
)

PREFIX = "tasks/"
ATTEMPTS_FILE = "attempts.json"
#: One object per task waiting for room in the group (``queue/<task_id>``), so the queue
#: is one short listing, and durable: any process holding the deployment starts them.
QUEUE_PREFIX = "queue/"


def key(task_id: str, name: str) -> str:
    return f"{PREFIX}{task_id}/{name}"


def read_json(s3: Any, bucket: str, task_id: str, name: str) -> Any | None:
    """A JSON file of the task's prefix, or ``None`` when it is not there."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key(task_id, name))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(body)


def write_json(s3: Any, bucket: str, task_id: str, name: str, data: Any, *,
               only_if_absent: bool = False) -> bool:
    """Write a JSON file of the task's prefix. ``only_if_absent``: S3's conditional write
    (``If-None-Match: *``), ``False`` when the file was there already."""
    from botocore.exceptions import ClientError

    condition = {"IfNoneMatch": "*"} if only_if_absent else {}
    try:
        s3.put_object(Bucket=bucket, Key=key(task_id, name), **condition,
                      Body=json.dumps(data, indent=2).encode(), ContentType="application/json")
    except ClientError as exc:
        # 409: another conditional write of the same key is in flight: it exists.
        if only_if_absent and exc.response.get("Error", {}).get("Code") in (
                "PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


def upload_outputs(s3: Any, bucket: str, task_id: str, task_dir: Path) -> None:
    """Upload what the runner wrote, result.json last: its presence means all is there."""
    upload_files(s3, bucket, task_id, task_dir, OUTPUT_FILES)
    artifacts = task_dir / ARTIFACTS_DIR
    if artifacts.is_dir():
        for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket, key(
                task_id, f"{ARTIFACTS_DIR}/{path.relative_to(artifacts).as_posix()}"))
    if (task_dir / RESULT_FILE).is_file():
        s3.upload_file(str(task_dir / RESULT_FILE), bucket, key(task_id, RESULT_FILE))


def copy_resume_inputs(s3: Any, bucket: str, from_task: str, to_task: str) -> None:
    """What a resuming task starts from: the earlier task's session and diff, copied under
    the new task's ``resume/`` (by the submitter, so a task reads only its own prefix)."""
    from botocore.exceptions import ClientError

    for name in RESUME_INPUTS:
        try:
            s3.copy_object(Bucket=bucket, Key=key(to_task, f"{RESUME_DIR}/{name}"),
                           CopySource={"Bucket": bucket, "Key": key(from_task, name)})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise


def download_resume_inputs(s3: Any, bucket: str, task_id: str, task_dir: Path) -> None:
    """The resume inputs under the task's prefix, into its directory, when there are any."""
    download_files(s3, bucket, task_id, tuple(f"{RESUME_DIR}/{name}" for name in RESUME_INPUTS),
                   task_dir, flatten=False)


def download_files(s3: Any, bucket: str, task_id: str, names: tuple[str, ...], dest: Path,
                   *, flatten: bool = True) -> None:
    """Those of ``names`` under the task's prefix that exist, into ``dest`` (by their last
    part with ``flatten``, else by their whole name)."""
    from botocore.exceptions import ClientError

    for name in names:
        target = dest / (name.rsplit("/", 1)[-1] if flatten else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3.download_file(bucket, key(task_id, name), str(target))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise


def upload_files(s3: Any, bucket: str, task_id: str, task_dir: Path,
                 names: tuple[str, ...]) -> None:
    """Those of ``names`` the task directory has, to the task's prefix."""
    for name in names:
        if (task_dir / name).is_file():
            s3.upload_file(str(task_dir / name), bucket, key(task_id, name))


def download_outputs(s3: Any, bucket: str, task_id: str, dest: Path) -> list[Path]:
    """Copy the task's outputs (not its spec or attempts) into ``dest/<task_id>/``."""
    target = dest / task_id
    written = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                              Prefix=key(task_id, "")):
        for item in page.get("Contents", []):
            name = item["Key"][len(key(task_id, "")):]
            if name in (SPEC_FILE, ATTEMPTS_FILE, "stop.json") or not name:
                continue
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
            written.append(path)
    return sorted(written)


def list_task_ids(s3: Any, bucket: str) -> list[str]:
    """Every task with a prefix in the bucket (ECS forgets stopped tasks; S3 does not)."""
    ids = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX,
                                                              Delimiter="/"):
        ids += [p["Prefix"][len(PREFIX):].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return ids


def enqueue(s3: Any, bucket: str, task_id: str) -> None:
    import datetime as dt

    s3.put_object(Bucket=bucket, Key=f"{QUEUE_PREFIX}{task_id}", ContentType="application/json",
                  Body=json.dumps({"task_id": task_id, "queued_at":
                                   dt.datetime.now(dt.UTC).isoformat()}).encode())


def dequeue(s3: Any, bucket: str, task_id: str) -> None:
    s3.delete_object(Bucket=bucket, Key=f"{QUEUE_PREFIX}{task_id}")


def queued(s3: Any, bucket: str) -> list[str]:
    """Queued task ids, oldest first (by when they were queued, then by id)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                              Prefix=QUEUE_PREFIX):
        found += [(item["LastModified"], item["Key"][len(QUEUE_PREFIX):])
                  for item in page.get("Contents", [])]
    return [task_id for _, task_id in sorted(found)]
