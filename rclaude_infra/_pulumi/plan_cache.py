"""Plans remembered on disk, for the commands that only read one (``plan``, ``cost``).

A plan is what the program registers for a name and a config, so it changes only with
them, with the package's own files (the program, its documents, its data) and with the
Pulumi SDK and providers' versions. A hit reads one JSON file and never imports Pulumi:
a fresh ``rclaude-infra cost`` takes a fraction of a second instead of running the program.
The key covers all of the above; a file that cannot be read is recomputed and replaced.
Where: ``$RCLAUDE_PLAN_CACHE``, by default ``~/.rclaude/cache/plans``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .._plan import Plan
from ..config import DeploymentConfig
from ..image_source import image_source
from ..paths import rclaude_home

#: Bump when the stored format changes.
FORMAT = 1
#: Plans kept; the least recently used go first (each is about 50 KB: 13 MB at most).
KEEP = 256
_DISTRIBUTIONS = ("pulumi", "pulumi-aws", "pulumi-awsx")


def cache_dir() -> Path:
    return Path(os.environ.get("RCLAUDE_PLAN_CACHE") or rclaude_home() / "cache" / "plans")


def _canonical(value: Any) -> Any:
    """``value`` with each whole float as an int: configs equal as values (``5`` and
    ``5.0`` tasks a day) get one key."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def cache_key(name: str, config: DeploymentConfig, *, with_api_key: bool) -> str:
    """What the plan depends on, hashed: the package's files and where they are (the
    image build names its context by path), the SDK's versions, the name and the config."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(distribution: str) -> str:
        try:
            return version(distribution)
        except PackageNotFoundError:
            return "absent"

    source = image_source()
    parts: dict[str, Any] = {
        "format": FORMAT, "package": source.digest, "root": str(source.root),
        "versions": {d: installed(d) for d in _DISTRIBUTIONS},
        "name": name, "config": _canonical(config.to_dict()), "api_key": with_api_key,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load(key: str) -> Plan | None:
    """The plan stored under ``key``, or ``None`` (none, or unreadable). A hit counts as a
    use: :func:`store` drops the plans least recently used, not the first written."""
    path = cache_dir() / f"{key}.json"
    try:
        data = json.loads(path.read_text())
        found = Plan.from_dict(data["plan"], data["states"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    with contextlib.suppress(OSError):  # a read-only cache still answers
        os.utime(path)
    return found


def store(key: str, plan: Plan) -> None:
    """Keep ``plan`` under ``key`` (written whole, then renamed into place) and at most
    :data:`KEEP` plans in all; a cache that cannot be written is skipped."""
    folder = cache_dir()
    data = {"plan": plan.to_dict(), "states": [dict(r.state) for r in plan.resources]}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
            json.dump(data, f)
        os.replace(f.name, folder / f"{key}.json")
        kept = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        return
