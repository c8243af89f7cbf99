"""IAM's matching of an Allow statement to a request, for the policies the tests check
the library's requests against (moto evaluates no IAM policy: emulator-gaps.md).

By IAM's documented matching: ``*`` matches any characters, ``/`` included, and
``${aws:userid}`` is replaced by the caller's value before matching (IAM User Guide, "IAM
policy elements: Variables and tags" and "Resource"); a ``StringEquals`` on the
resource's tags compares the tag's value after the same substitution, and one on a
request's condition key compares that key's value. Only what the stack's policies use is
modelled: Allow statements, ``Action``/``Resource`` (no ``Not`` forms) and exact
``StringEquals``/``ArnEquals`` conditions; anything else does not match.
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


def _conditions_hold(statement: Mapping[str, Any], userid: str, tags: Mapping[str, str],
                     context: Mapping[str, str]) -> bool:
    """Each condition holds: ``StringEquals`` or ``ArnEquals`` (exact values, the kinds
    the stack's policies use) on a resource tag or a key of the request's ``context``."""
    for operator, keys in statement.get("Condition", {}).items():
        if operator not in ("StringEquals", "ArnEquals"):
            return False
        for key, value in keys.items():
            service, _, tag = key.partition("/")
            if service in ("secretsmanager:ResourceTag", "aws:ResourceTag"):
                seen = tags.get(tag)
            else:
                seen = context.get(key)
            if seen != value.replace("${aws:userid}", userid):
                return False
    return True


def allowed(statements: list[dict[str, Any]], action: str, resource: str, userid: str = "",
            tags: Mapping[str, str] | None = None,
            context: Mapping[str, str] | None = None) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` (with ``tags``) to the
    session whose ``aws:userid`` is ``userid``, in a request with the condition keys of
    ``context`` (``ecs:cluster``, ``iam:PassedToService``, ...)."""
    return any(
        _conditions_hold(s, userid, tags or {}, context or {})
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(s["Action"]))
        and any(fnmatch.fnmatchcase(resource, r.replace("${aws:userid}", userid))
                for r in _listed(s["Resource"]))
        for s in statements)
