"""Where a task's files land when they are downloaded, and which are refused.

What a task leaves (S3 keys under its run, files under its artifacts) is the work of an
agent that runs arbitrary commands: a name with ``..`` or a leading ``/``, a link to
``/etc/passwd`` or a loop of links is what a hostile task would leave. Every path
written resolves inside the destination, nothing is written through a link, links are
never followed (they are skipped), and what was skipped is reported with why.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Collection, Iterable
from pathlib import Path


class Downloaded(list[Path]):
    """The files written by a download (a list of paths), and :attr:`skipped`: each
    name that was not written, with why::

        files = task.result().download("out/")
        for name, why in files.skipped:     # e.g. ("artifacts/pw", "a link ...")
            print("not downloaded:", name, why)
    """

    def __init__(self, written: Iterable[Path] = (),
                 skipped: Iterable[tuple[str, str]] = (), *,
                 only: Collection[str] | None = None) -> None:
        super().__init__(sorted(written))
        self.skipped: list[tuple[str, str]] = list(skipped)
        #: The names to write (``None``: all); any other is passed over, not reported.
        self.only = None if only is None else frozenset(only)

    def put(self, dest: Path, name: str, write: Callable[[Path], object]) -> None:
        """Write ``name`` under ``dest`` with ``write(path)`` when :func:`place` allows
        it (the written path joins the list), else note it in :attr:`skipped`; a name
        not in :attr:`only` is not written at all."""
        if self.only is not None and name not in self.only:
            return
        try:
            path = place(dest, name)
        except ValueError as exc:
            self.skipped.append((name, str(exc)))
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        self.append(path)


def place(dest: Path, name: str) -> Path:
    """Where ``name`` (``/``-separated, relative: an S3 key's tail, a file under a task
    directory) is written under ``dest``; ``ValueError`` saying why when it would not
    stay inside ``dest``, or would be written through a link.

    >>> place(Path("/out"), "artifacts/report.txt").as_posix()
    '/out/artifacts/report.txt'
    >>> place(Path("/out"), "../../home/me/.bashrc")
    Traceback (most recent call last):
    ...
    ValueError: '../../home/me/.bashrc' has a '..' segment
    """
    if not name or "\x00" in name:
        raise ValueError(f"{name!r} is empty or has a NUL byte")
    if name.startswith("/"):
        raise ValueError(f"{name!r} is absolute")
    segments = name.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError(f"{name!r} has a {segment or 'empty'!r} segment")
    path = dest
    for segment in segments:
        path = path / segment
        if path.is_symlink():
            raise ValueError(f"{name!r} would be written through the link {path}")
    root = dest.resolve()
    if not path.resolve().is_relative_to(root):
        raise ValueError(f"{name!r} resolves outside {dest}")
    return path


def copy_tree(source: Path, dest: Path, names: Iterable[str], *,
              tree: str | None = None, only: Collection[str] | None = None) -> Downloaded:
    """Copy ``names`` (files directly under ``source``) and, with ``tree``, every file
    under ``source/tree``, into ``dest``, the same relative paths: regular files only
    (of those, with ``only``, the ones it names). Links (to files, directories, or in a
    loop) and special files are skipped and reported, never followed."""
    files = Downloaded(only=only)

    def copy_file(name: str, target: Path) -> None:
        # By its descriptor, opened without following a link swapped in since the look.
        fd = os.open(source / name, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as reader, open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer)
        shutil.copystat(source / name, target, follow_symlinks=False)

    def copy(name: str) -> None:
        try:
            kind = os.lstat(source / name).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(kind):
            files.skipped.append((name, f"a link (to {os.readlink(source / name)}): not "
                                  "followed"))
        elif not stat.S_ISREG(kind):
            files.skipped.append((name, "not a regular file"))
        else:
            files.put(dest, name, lambda target: copy_file(name, target))

    for name in names:
        copy(name)
    if tree is not None and (source / tree).is_dir() and not (source / tree).is_symlink():
        for folder, directories, found in os.walk(source / tree):  # never into a link
            relative = Path(folder).relative_to(source).as_posix()
            for directory in directories:
                if (Path(folder) / directory).is_symlink():
                    files.skipped.append((f"{relative}/{directory}", "a link to a "
                                          "directory: not followed"))
            for file in found:
                copy(f"{relative}/{file}")
    files.sort()
    return files
