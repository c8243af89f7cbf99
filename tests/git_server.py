"""A git host on loopback that asks for a token: git's smart HTTP protocol through
``git http-backend`` (CGI, as git-scm documents it), behind HTTP Basic authentication.

``GitServer(root, token)``: repositories under ``root`` are served at
``http://127.0.0.1:PORT/<name>``; a request without ``Authorization: Basic`` for any user
and ``token`` as the password gets ``401`` with ``WWW-Authenticate``, so git asks its
credential helper, as it does against GitHub or GitLab. Every request's user and whether it
was let in are logged.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from loopback import LoopbackServer


class GitServer(LoopbackServer):
    """``token=None``: public repositories, served to anyone."""

    def __init__(self, root: Path, token: str | None, *, delay: float = 0.0) -> None:
        self.root = root
        self.token = token
        #: Seconds each authorized request waits before it is served (a slow host).
        self.delay = delay
        self.log: list[tuple[str, str, bool]] = []  # (method, path, authorized)
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _authorized(self) -> bool:
                if server.token is None:
                    return True
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return False
                _, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return password == server.token

            def _serve(self) -> None:
                ok = self._authorized()
                server.log.append((self.command, self.path, ok))
                if not ok:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(server.delay)
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {**os.environ, "GIT_PROJECT_ROOT": str(server.root),
                       "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
                       "REQUEST_METHOD": self.command, "REMOTE_USER": "token",
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                       "CONTENT_LENGTH": str(len(body))}
                done = subprocess.run(["git", "http-backend"], input=body, env=env,
                                      capture_output=True, timeout=60)
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve
            do_POST = _serve

        return Handler
