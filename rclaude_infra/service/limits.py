"""Requests per user per minute: a fixed window counted in the database with one upsert
per request, so several service processes on one database hold one limit. Answers carry
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (the IETF httpapi
draft's fields); a request over the limit is a 429 with ``Retry-After``."""

from __future__ import annotations

import time

import attrs
from sqlalchemy import delete
from sqlalchemy.orm import Session

from .models import RateWindow
from .store import dialect_insert


@attrs.frozen
class Allowance:
    """What a request left of its user's minute."""

    limit: int
    remaining: int
    #: Seconds until the window starts again.
    reset: int

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit),
                "RateLimit-Remaining": str(max(0, self.remaining)),
                "RateLimit-Reset": str(self.reset)}


def count_request(session: Session, user_id: int, limit: int,
                  now: float | None = None) -> Allowance:
    """Count one request of ``user_id`` in this minute's window; what is left of it."""
    stamp = time.time() if now is None else now
    window = int(stamp // 60)
    statement = dialect_insert(session)(RateWindow).values(user_id=user_id, window=window, count=1)
    upsert = statement.on_conflict_do_update(
        index_elements=[RateWindow.user_id, RateWindow.window],
        set_={"count": RateWindow.count + 1}).returning(RateWindow.count)
    count = int(session.execute(upsert).scalar_one())
    if count == 1:  # the minute's first request: the user's older windows go
        session.execute(delete(RateWindow).where(RateWindow.user_id == user_id,
                                                 RateWindow.window < window))
    return Allowance(limit=limit, remaining=limit - count,
                     reset=max(1, int((window + 1) * 60 - stamp)))
