"""Writing and reading the records of a task's folder, which the task can write too.

A local task runs as the user who submitted it, and an ECS task's agent shares the
runner's container, so the folder's names may hold whatever the task left there: a link
to a file outside the run, a folder, a predictable temporary name made a link. A record
is therefore written to a fresh temporary file (created exclusively, so never through a
link), synced, and renamed over the name (which replaces a link, never follows it); and
read without following a link, as a regular file of bounded size.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

#: The largest record read back (a result, a process record): a task may leave a huge one.
MAX_RECORD_BYTES = 16 * 1024 * 1024


def write_record(path: Path, data: str | bytes) -> None:
    """Write ``path`` whole or not at all: a new temporary file beside it, synced, renamed
    over it. A failed write (a full disk) leaves the old record, or none; a link or a
    folder a task left at ``path`` is replaced, never written through."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # rename cannot replace a folder the task made there
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_record(path: Path, limit: int | None = MAX_RECORD_BYTES) -> bytes | None:
    """``path``'s bytes when it is a regular file of at most ``limit`` bytes (``None``:
    any size); ``None`` when it is missing, a link, a folder or anything else, or larger."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or (limit is not None and info.st_size > limit):
            return None
        # Records are replaced whole, never grown: read what fstat saw, and one byte more
        # to tell a file the task is growing now (too large when that passes the limit).
        size = info.st_size if limit is None else min(limit, info.st_size)
        data = f.read(size + 1)
    return data if limit is None or len(data) <= limit else None


def copy_record(source: Path, target: Path) -> bool:
    """Copy the regular file ``source`` to ``target`` as :func:`write_record` writes;
    ``False`` (nothing written) when ``source`` is not one."""
    data = read_record(source, limit=None)
    if data is None:
        return False
    write_record(target, data)
    return True
