"""The runner image's source for a build in the account (``build_image="remote"``): the
installed package directory as a reproducible zip, named by a hash of what it holds.

It is the directory local Docker uses as its build context (a wheel's install as much as
a checkout), less what the package's ``.dockerignore`` leaves out. The hash names the
image tag and the zip's key in the results bucket, so the task definition can name the
image before it is built and an unchanged package is never built twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs

#: The installed package: the build context.
PACKAGE_DIR = Path(__file__).resolve().parent
#: Inside the context: the runner's Dockerfile and CodeBuild's recipe for it.
DOCKERFILE = "_pulumi/runner/Dockerfile"
BUILDSPEC = "_pulumi/runner/buildspec.yml"
#: Where in the results bucket the sources go (``build/runner-<hash>.zip``).
SOURCE_PREFIX = "build/"
#: Docker's platform name per config ``arch``.
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
_DIGEST_CHARS = 20
#: Zip entries carry this time, so the same files make the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def service_tag(runner_tag: str) -> str:
    """The service's image tag beside the runner's (``mode="service"``): the same sources,
    the other Dockerfile.

    >>> service_tag("0123abcd-arm64")
    '0123abcd-arm64-service'
    """
    return f"{runner_tag}-service"


@attrs.frozen(kw_only=True)
class ImageSource:
    """The files of a build context and their digest.

    >>> source = image_source()
    >>> DOCKERFILE in source.files and BUILDSPEC in source.files
    True
    >>> source.tag("arm64") == source.digest[:20] + "-arm64"
    True
    """

    root: Path
    #: Paths relative to ``root`` (POSIX separators), sorted.
    files: tuple[str, ...]
    #: SHA-256 over every file's path and content, in order.
    digest: str

    def tag(self, arch: str) -> str:
        """The image tag for this source built for ``arch`` (``x86_64`` or ``arm64``)."""
        return f"{self.digest[:_DIGEST_CHARS]}-{arch}"

    @property
    def key(self) -> str:
        """The zip's key in the results bucket."""
        return f"{SOURCE_PREFIX}runner-{self.digest[:_DIGEST_CHARS]}.zip"

    def zip_bytes(self) -> bytes:
        """The files as a zip whose bytes depend on their paths and contents only."""
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in self.files:
                info = zipfile.ZipInfo(name, date_time=_EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, (self.root / name).read_bytes())
        return buffer.getvalue()


def _ignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _ignored(parts: tuple[str, ...], patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` leaves the path out: ``**/name`` matches any component,
    other patterns the whole relative path (the forms this package's file uses)."""
    import fnmatch

    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                return True
        elif fnmatch.fnmatchcase("/".join(parts), pattern):
            return True
    return False


def image_source(root: Path = PACKAGE_DIR) -> ImageSource:
    """The build context at ``root`` (default: this installed package)."""
    patterns = _ignore_patterns(root)
    files = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and not _ignored(path.relative_to(root).parts, patterns)
    )
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((root / name).read_bytes()).digest())
    return ImageSource(root=root, files=tuple(files), digest=digest.hexdigest())


@attrs.frozen(kw_only=True)
class ImageBuild:
    """What :meth:`Deployment.ensure_image` found or did.

    ``status``: ``"present"`` (the image was already in the repository), ``"built"``
    (a build made it now, or one already running finished) or ``"external"`` (the stack
    does not build its image in the account: ``image=`` or local Docker).

    >>> ImageBuild(image="123.dkr.ecr.us-east-1.amazonaws.com/r:ab-x86_64",
    ...            status="present").status
    'present'
    """

    image: str
    status: str
    build_id: str | None = None
    #: How long the build ran (start to end), when one ran.
    seconds: float | None = None
