"""Errors as RFC 9457 problem details (``application/problem+json``), each naming the
field it is about when there is one; the library's own errors mapped to statuses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BudgetExceededError,
    ConfigError,
    DeploymentClosedError,
    RclaudeError,
)
from ..tasks.model import TaskNotFoundError

PROBLEM_JSON = "application/problem+json"
_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 409: "Conflict", 413: "Content too large",
           402: "Payment required", 422: "Unprocessable content", 429: "Too many requests",
           500: "Internal server error", 503: "Service unavailable"}


class ProblemDetails(BaseModel):
    """An error answer (RFC 9457), as documented in the API's schema."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = None
    instance: str | None = None
    #: For a plan's limit (402, 429): which limit, its figure, when it resets, and
    #: where to upgrade.
    limit: str | None = None
    allowed: float | None = None
    resets_at: str | None = None
    upgrade: str | None = None


class Problem(Exception):
    """An error answer: ``status``, what happened (``detail``) and the ``field`` it is
    about; ``headers`` go with it (``WWW-Authenticate``, ``Retry-After``); ``members``
    are RFC 9457 extension members (a plan limit's ``limit``, ``allowed``,
    ``resets_at``, ``upgrade``)."""

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, **members: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.members = members


def problem_response(status: int, detail: str, *, field: str | None = None,
                     headers: dict[str, str] | None = None,
                     instance: str | None = None,
                     members: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": _TITLES.get(status, "Error"),
                            "status": status, "detail": detail, **(members or {})}
    if field is not None:
        body["field"] = field
    if instance is not None:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field_of(location: tuple[Any, ...]) -> str:
    """``("body", "env", "X")`` -> ``env.X``; a header or query parameter by its name."""
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, field=exc.field, headers=exc.headers,
                                instance=request.url.path, members=exc.members)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid"}
        field = _field_of(tuple(first.get("loc", ("body",))))
        return problem_response(422, f"{field}: {first.get('msg', 'invalid')}", field=field,
                                instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail),
                                headers=dict(exc.headers or {}), instance=request.url.path)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return problem_response(422, str(exc), field=exc.field, instance=request.url.path)

    @app.exception_handler(TaskNotFoundError)
    async def _missing(request: Request, exc: TaskNotFoundError) -> JSONResponse:
        return problem_response(404, "no such task", instance=request.url.path)

    @app.exception_handler(BudgetExceededError)
    async def _budget(request: Request, exc: BudgetExceededError) -> JSONResponse:
        return problem_response(409, str(exc), field="max_budget_usd",
                                instance=request.url.path)

    @app.exception_handler(DeploymentClosedError)
    async def _closed(request: Request, exc: DeploymentClosedError) -> JSONResponse:
        return problem_response(503, str(exc), headers={"Retry-After": "300"},
                                instance=request.url.path)

    @app.exception_handler(RclaudeError)
    async def _library(request: Request, exc: RclaudeError) -> JSONResponse:
        return problem_response(503, f"the deployment could not do it: {exc}",
                                instance=request.url.path)
