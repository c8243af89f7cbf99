"""IAM's matching of an Allow statement to a request, for the policies the tests check
the library's requests against (moto evaluates no IAM policy: emulator-gaps.md).

By IAM's documented matching: ``*`` matches any characters, ``/`` included, and
``${aws:userid}`` is replaced by the caller's value before matching (IAM User Guide, "IAM
policy elements: Variables and tags" and "Resource"); a ``StringEquals`` on the
resource's tags compares the tag's value after the same substitution. Only what the
stack's policies use is modelled: Allow statements, ``Action``/``Resource`` (no ``Not``
forms) and that one kind of condition; anything else does not match.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from typing import Any


def statements_of(document: str | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Allow statements of a policy document (JSON text or parsed)."""
    parsed = json.loads(document) if isinstance(document, str) else document
    listed = parsed["Statement"]
    return [s for s in ([listed] if isinstance(listed, dict) else listed)
            if s["Effect"] == "Allow"]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _conditions_hold(statement: Mapping[str, Any], userid: str,
                     tags: Mapping[str, str]) -> bool:
    conditions = statement.get("Condition")
    if conditions is None:
        return True
    if set(conditions) != {"StringEquals"}:
        return False
    for key, value in conditions["StringEquals"].items():
        service, _, tag = key.partition("/")
        if service not in ("secretsmanager:ResourceTag", "aws:ResourceTag"):
            return False
        if tags.get(tag) != value.replace("${aws:userid}", userid):
            return False
    return True


def allowed(statements: list[dict[str, Any]], action: str, resource: str, userid: str = "",
            tags: Mapping[str, str] | None = None) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` (with ``tags``) to the
    session whose ``aws:userid`` is ``userid``."""
    return any(
        _conditions_hold(s, userid, tags or {})
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(s["Action"]))
        and any(fnmatch.fnmatchcase(resource, r.replace("${aws:userid}", userid))
                for r in _listed(s["Resource"]))
        for s in statements)
