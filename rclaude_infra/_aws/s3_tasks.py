"""A task's S3 prefix: ``s3://<bucket>/tasks/<task_id>/`` holds its spec and its
attempts; each attempt's run, ``runs/<run>/`` under it, holds the inputs its submitter
copied there and, once the runner is done, its outputs (the same layout as a local task
directory). A stack from before runs were scoped keeps everything in the task's prefix:
its functions take ``run=None``."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..tasks.downloads import Downloaded
from ..tasks.layout import (
    ARTIFACTS_DIR,
    CHECKPOINT_FILES,
    INPUTS_FILE,
    OUTPUT_FILES,
    PREVIOUS_DIR,
    RESULT_FILE,
    RESUME_DIR,
    RESUME_INPUTS,
    RUNS_DIR,
    SPEC_FILE,
    TASKS_PREFIX,
)
from ..tasks.spec import check_task_id, is_task_id
from . import error_code

ATTEMPTS_FILE = "attempts.json"
#: One object per task waiting for room in the group (``queue/<task_id>``), so the queue
#: is one short listing, and durable: any process holding the deployment starts them.
QUEUE_PREFIX = "queue/"


#: Present while the deployment takes no new tasks (``destroy()`` writes it first, ``up()``
#: deletes it): every submitter reads it before RunTask, and again after.
CLOSED_KEY = "control/closed.json"


def closed(s3: Any, bucket: str) -> dict[str, Any] | None:
    """The deployment's closed marker (``{"reason", "at"}``), or ``None`` when it is open
    (or its bucket is gone with the stack)."""
    found = get_json(s3, bucket, CLOSED_KEY, missing_bucket_ok=True)
    if found is None:
        return None
    return found[0] if isinstance(found[0], dict) else {"reason": "closed"}


def close(s3: Any, bucket: str, reason: str) -> None:
    """Close the deployment to new tasks, saying why (nothing when its bucket is gone:
    no task can be submitted without it)."""
    from botocore.exceptions import ClientError

    try:
        s3.put_object(Bucket=bucket, Key=CLOSED_KEY, ContentType="application/json",
                      Body=json.dumps({"reason": reason,
                                       "at": dt.datetime.now(dt.UTC).isoformat()}).encode())
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise


def reopen(s3: Any, bucket: str) -> None:
    """Take new tasks again (nothing when the deployment was open)."""
    from botocore.exceptions import ClientError

    try:
        s3.delete_object(Bucket=bucket, Key=CLOSED_KEY)
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise


def key(task_id: str, name: str, run: str | None = None) -> str:
    """The key of ``name`` in the task's prefix, or in its run's folder when ``run``
    (an id that is not a task id, ``../x`` say, never becomes a key)."""
    check_task_id(task_id)
    if run is None:
        return f"{TASKS_PREFIX}{task_id}/{name}"
    return f"{TASKS_PREFIX}{task_id}/{RUNS_DIR}/{run}/{name}"


def get_json(s3: Any, bucket: str, object_key: str, *,
             missing_bucket_ok: bool = False) -> tuple[Any, str] | None:
    """The JSON value at ``object_key`` and its ETag (the value ``None`` when the object
    is not JSON: a run's files are its task's to write), or ``None`` when it is not there
    (nor, with ``missing_bucket_ok``, its bucket)."""
    from botocore.exceptions import ClientError

    absent = ("NoSuchKey", "404", "NotFound") + (("NoSuchBucket",) if missing_bucket_ok
                                                  else ())
    try:
        found = s3.get_object(Bucket=bucket, Key=object_key)
    except ClientError as exc:
        if error_code(exc) in absent:
            return None
        raise
    try:
        value = json.loads(found["Body"].read())
    except ValueError:
        value = None
    return value, str(found["ETag"])


def read_json(s3: Any, bucket: str, task_id: str, name: str, *,
              run: str | None = None) -> Any | None:
    """A JSON file of the task's prefix (or run), or ``None`` when it is not there."""
    found = get_json(s3, bucket, key(task_id, name, run))
    return None if found is None else found[0]


def written_at(s3: Any, bucket: str, task_id: str, name: str) -> dt.datetime | None:
    """When a file of the task's prefix was last written, or ``None`` when it is not."""
    from botocore.exceptions import ClientError

    try:
        modified: dt.datetime = s3.head_object(Bucket=bucket,
                                               Key=key(task_id, name))["LastModified"]
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return modified


def write_json(s3: Any, bucket: str, task_id: str, name: str, data: Any, *,
               only_if_absent: bool = False, run: str | None = None) -> bool:
    """Write a JSON file of the task's prefix. ``only_if_absent``: S3's conditional write
    (``If-None-Match: *``), ``False`` when the file was there already."""
    from botocore.exceptions import ClientError

    condition = {"IfNoneMatch": "*"} if only_if_absent else {}
    try:
        s3.put_object(Bucket=bucket, Key=key(task_id, name, run), **condition,
                      Body=json.dumps(data, indent=2).encode(), ContentType="application/json")
    except ClientError as exc:
        # 409: another conditional write of the same key is in flight: it exists.
        if only_if_absent and error_code(exc) in (
                "PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


def upload_outputs(s3: Any, bucket: str, task_id: str, task_dir: Path, *,
                   run: str | None = None) -> None:
    """Upload what the runner wrote, result.json last: its presence means all is there."""
    upload_files(s3, bucket, task_id, task_dir, OUTPUT_FILES, run=run)
    artifacts = task_dir / ARTIFACTS_DIR
    if artifacts.is_dir():
        for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket, key(
                task_id, f"{ARTIFACTS_DIR}/{path.relative_to(artifacts).as_posix()}", run))
    if (task_dir / RESULT_FILE).is_file():
        s3.upload_file(str(task_dir / RESULT_FILE), bucket, key(task_id, RESULT_FILE, run))


def _copy(s3: Any, bucket: str, source: str, target: str) -> bool:
    """Copy one object within the bucket; ``False`` when the source is not there."""
    from botocore.exceptions import ClientError

    try:
        s3.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source})
    except ClientError as exc:
        if error_code(exc) not in ("NoSuchKey", "404"):
            raise
        return False
    return True


def copy_resume_inputs(s3: Any, bucket: str, from_task: str, to_task: str, *,
                       from_run: str | None = None) -> None:
    """What a resuming task starts from: the earlier task's session and diff (from its
    last run), copied under the new task's ``resume/`` by the submitter."""
    for name in RESUME_INPUTS:
        _copy(s3, bucket, key(from_task, name, from_run), key(to_task, f"{RESUME_DIR}/{name}"))


def stage_run(s3: Any, bucket: str, task_id: str, run: str, spec: Mapping[str, Any], *,
              resume: bool = False, previous_run: str | None = None,
              after_attempt: bool = False) -> list[str]:
    """Put a run's inputs in its folder, the only one its task may read: ``resume``, the
    resume inputs the task's prefix holds; ``after_attempt``, what the earlier attempt (in
    ``previous_run``'s folder) left, under ``previous/``. Then :data:`INPUTS_FILE`, last,
    holding the spec and naming the files: the runner waits for it. Returns the names."""
    wanted = []
    if resume:
        wanted += [(key(task_id, f"{RESUME_DIR}/{name}"), f"{RESUME_DIR}/{name}")
                   for name in RESUME_INPUTS]
    if after_attempt:
        wanted += [(key(task_id, name, previous_run), f"{PREVIOUS_DIR}/{name}")
                   for name in (RESULT_FILE, *CHECKPOINT_FILES)]
    staged = [name for source, name in wanted
              if _copy(s3, bucket, source, key(task_id, name, run))]
    write_json(s3, bucket, task_id, INPUTS_FILE, {"spec": dict(spec), "files": staged},
               run=run)
    return staged


def download_resume_inputs(s3: Any, bucket: str, task_id: str, task_dir: Path) -> None:
    """The resume inputs under the task's prefix, into its directory, when there are any."""
    download_files(s3, bucket, task_id, tuple(f"{RESUME_DIR}/{name}" for name in RESUME_INPUTS),
                   task_dir, flatten=False)


def download_files(s3: Any, bucket: str, task_id: str, names: tuple[str, ...], dest: Path,
                   *, flatten: bool = True, run: str | None = None) -> None:
    """Those of ``names`` under the task's prefix (or run) that exist, into ``dest`` (by
    their last part with ``flatten``, else by their whole name)."""
    from botocore.exceptions import ClientError

    for name in names:
        target = dest / (name.rsplit("/", 1)[-1] if flatten else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3.download_file(bucket, key(task_id, name, run), str(target))
        except ClientError as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise


def upload_files(s3: Any, bucket: str, task_id: str, task_dir: Path,
                 names: tuple[str, ...], *, run: str | None = None) -> None:
    """Those of ``names`` the task directory has, to the task's prefix (or run)."""
    for name in names:
        if (task_dir / name).is_file():
            s3.upload_file(str(task_dir / name), bucket, key(task_id, name, run))


def _download(s3: Any, bucket: str, object_key: str, path: Path) -> None:
    s3.download_file(bucket, object_key, str(path))


def download_outputs(s3: Any, bucket: str, task_id: str, dest: Path, *,
                     run: str | None = None, names: Collection[str] | None = None
                     ) -> Downloaded:
    """Copy the task's outputs (not its spec, attempts or staged inputs; ``names``: only
    those) into ``dest/<task_id>/``. The run's keys are the task's to choose (its role
    writes them): a key that would land outside the destination, or through a link, is
    skipped and reported (:func:`~rclaude_infra.tasks.downloads.place`)."""
    files = Downloaded(only=names)
    folder = key(task_id, "", run)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        for item in page.get("Contents", []):
            name = item["Key"][len(folder):]
            if (name in (SPEC_FILE, ATTEMPTS_FILE, "stop.json", INPUTS_FILE) or not name
                    or name.startswith((f"{RUNS_DIR}/", f"{PREVIOUS_DIR}/"))):
                continue
            files.put(dest / task_id, name, functools.partial(_download, s3, bucket,
                                                              item["Key"]))
    files.sort()
    return files


def list_task_ids(s3: Any, bucket: str) -> list[str]:
    """Every task with a prefix in the bucket (ECS forgets stopped tasks; S3 does not)."""
    ids = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=TASKS_PREFIX,
                                                              Delimiter="/"):
        ids += [p["Prefix"][len(TASKS_PREFIX):].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return [i for i in ids if is_task_id(i)]  # a prefix that is no task id is no task


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
