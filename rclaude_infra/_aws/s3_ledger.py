"""The month's budget reservations of ECS tasks, in one S3 object per month
(``ledger/<YYYY-MM>.json``) changed only by conditional writes: each change is written
``If-Match`` the ETag it read (``If-None-Match: *`` for the month's first), so of two
submitters on any hosts one wins and the other reads again and checks again.

S3 answers a lost race with 412 ``PreconditionFailed``, or 409
``ConditionalRequestConflict`` while another conditional write of the key is in flight
(Amazon S3 User Guide, "How to prevent object overwrites with conditional writes"). The
task role cannot write it: its policy names only its own run's folder.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from ..errors import EngineError
from . import error_code
from .s3_tasks import get_json

LEDGER_PREFIX = "ledger/"
#: Lost races before giving up: each retry means another submitter's change landed.
MAX_TRIES = 25

Entries = dict[str, Any]


class S3Reservations:
    """Reservations in ``s3://<bucket>/ledger/<YYYY-MM>.json``."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def _read(self, key: str) -> tuple[Entries, str | None]:
        found = get_json(self._s3, self._bucket, key)
        if found is None:
            return {}, None
        entries, etag = found  # not an object: the month's reservations start again
        return (entries if isinstance(entries, dict) else {}), etag

    def update(self, month: str, change: Callable[[Entries], Entries]) -> Entries:
        """Read the month's reservations, apply ``change`` (which may raise: nothing is
        written then) and write what it returns if nobody wrote in between; else read and
        apply again. Returns what was written."""
        from botocore.exceptions import ClientError

        key = f"{LEDGER_PREFIX}{month}.json"
        for attempt in range(MAX_TRIES):
            entries, etag = self._read(key)
            changed = change(entries)
            condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
            try:
                self._s3.put_object(Bucket=self._bucket, Key=key, **condition,
                                    Body=json.dumps(changed).encode(),
                                    ContentType="application/json")
            except ClientError as exc:
                if error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                time.sleep(random.uniform(0, min(1.0, 0.02 * 2 ** attempt)))
                continue
            return changed
        raise EngineError(f"the budget's ledger s3://{self._bucket}/{key} changed under "
                          f"every one of {MAX_TRIES} tries; submit again")
