"""The service's HTTP API (FastAPI): ``/v1`` tasks, tokens and the caller, with bearer
tokens; health and readiness; errors as problem details. Every task route answers 404
for a task that is not the caller's, as for one that does not exist."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, some
# of them local to create_app, at run time.
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Cookie,
    Depends,
    FastAPI,
    Header,
    Query,
    Request,
    Response,
)
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import __version__
from ..errors import ConfigError
from ..tasks.model import TaskNotFoundError, TaskStatus
from ..tasks.spec import TaskSpec, is_env_name, is_task_id
from . import accounts, dashboard, device, events, quotas, signin, web
from .billing import Billing, billing_of
from .diffview import diff_files
from .dispatch import Dispatcher, task_event_queue
from .limits import Allowance, count_request
from .metering import ledger_usage, record_usage
from .models import (
    ApiToken,
    Identity,
    TaskRecord,
    UsageRecord,
    User,
    UserSecret,
    WebSession,
    now,
)
from .money import usd
from .problems import Problem, ProblemDetails, install
from .settings import ServiceSettings, deployment_of
from .store import Database, make_engine, prepare
from .vault import Vault, load_key

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..deployment import Deployment
    from ..tasks.downloads import Downloaded
    from ..tasks.model import LogLine, Task, TaskResult

PAGE_SIZE = 20
#: The largest task file served in one answer (the CLI downloads any size).
MAX_FILE_BYTES = 50 * 2**20
MAX_PAGE = 100
#: Requests holding a database session at once (the pool holds 40 connections:
#: ``store.POOL_SIZE`` + ``store.POOL_OVERFLOW``; the token lookups take a few more).
SESSIONS = 30
#: What every /v1 route may answer besides success (problem details).
COMMON_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid bearer token", "model": ProblemDetails},
    403: {"description": "the token lacks the route's scope", "model": ProblemDetails},
    404: {"description": "no such task or token (also another user's)",
          "model": ProblemDetails},
    422: {"description": "a field is not allowed: it is named", "model": ProblemDetails},
    429: {"description": "over a per-user limit (Retry-After)", "model": ProblemDetails},
}


class TaskRequest(BaseModel):
    """``POST /v1/tasks``: the fields of the library's task spec, named as there."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = None
    command: str | list[str] | None = None
    repo: str | None = Field(None, description="an https://, http:// or ssh URL of a "
                             "repository")
    ref: str | None = None
    env: dict[str, str] | None = None
    timeout: int | None = None
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    output: str | None = None
    branch: str | None = None
    check: str | list[str] | None = None
    cpu: int | None = None
    memory: int | None = None
    max_retries_on_preemption: int | None = None
    description: str | None = None
    claude_args: list[str] | None = None
    claude_settings: dict[str, Any] | None = None
    secrets: list[str] | None = Field(None, description="names of your secrets "
                                      "(PUT /v1/secrets/{name}): each reaches the task as "
                                      "an environment variable of that name")
    git_token_secret: str | None = Field(None, description="which of secrets is a token "
                                         "for the repository's host")


class FollowUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=65536)


class DevicePoll(BaseModel):
    grant_type: str
    device_code: str = Field(max_length=200)


class DeviceApproval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_code: str = Field(max_length=20)
    deny: bool = False


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "token"
    scopes: list[str] = Field(default_factory=lambda: list(accounts.DEFAULT_SCOPES))


class Caller:
    """Who is asking: with a token (its scopes), or from a signed-in browser (``token``
    is None; the scopes a CLI login gets)."""

    def __init__(self, user: User, token: ApiToken | None) -> None:
        self.user = user
        self.token = token
        # A signed-in browser has what a CLI login gets, and an admin's administers.
        self.scopes = frozenset(token.scopes.split() if token is not None
                                else (*accounts.DEFAULT_SCOPES,
                                      *(("admin",) if user.is_admin else ())))


def _digest(fields: dict[str, Any]) -> str:
    """What tells two task requests apart (an Idempotency-Key's body)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _repo_allowed(repo: str) -> bool:
    """A remote repository: never a path or ``file://`` on the service's machine."""
    return repo.startswith(("https://", "http://", "ssh://")) or (
        "@" in repo.split(":", 1)[0] and ":" in repo and not repo.startswith("/"))


def create_app(settings: ServiceSettings | None = None, *,
               deployment: "Deployment | None" = None) -> FastAPI:
    """The service's ASGI app on ``settings`` (default: from the environment), running
    tasks with ``deployment`` (default: :func:`~.settings.deployment_of` the settings).
    An empty database is migrated first."""
    settings = settings or ServiceSettings.from_env()
    engine = make_engine(settings)
    prepare(engine, settings)
    db = Database(engine)
    runner = deployment or deployment_of(settings)

    vault = Vault(load_key())
    billing = billing_of(settings)
    dispatcher = Dispatcher(db, runner, vault, plans=settings.plans, billing=billing)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Background work in this process unless API-only (``serve --no-dispatch``,
        # with ``rclaude-infra worker`` processes doing it).
        if settings.dispatch:
            dispatcher.start()
            queue = task_event_queue(settings, runner)
            if queue is not None:
                dispatcher.follow_events(queue)
        try:
            yield
        finally:
            await asyncio.to_thread(dispatcher.stop)

    app = FastAPI(title="rclaude-infra", version=__version__, lifespan=lifespan,
                  description="Run coding-agent tasks on your own cloud.")
    app.state.settings, app.state.db, app.state.deployment = settings, db, runner
    app.state.dispatcher = dispatcher
    watches = events.Watches()

    def wake() -> None:
        """A task was recorded: this process's dispatcher looks now, not at its next
        round (a worker process finds it at its next)."""
        dispatcher.wake()
    v1 = APIRouter(prefix="/v1", responses=COMMON_PROBLEMS)
    install(app)
    signin.install(app, db, settings, dict(settings.providers))
    dashboard.install(app, db)

    finisher = concurrent.futures.ThreadPoolExecutor(8, "rclaude-db-end")

    async def session() -> AsyncIterator[Session]:
        # Async, and ended on threads of its own: a sync dependency's end waits for one of
        # the route threads, which may all be waiting for a pooled connection that only
        # such an end gives back (a deadlock under a hundred concurrent requests). A
        # route's thread holds a connection only while it runs.
        opened = db.new_session()
        loop = asyncio.get_running_loop()
        try:
            yield opened
            await loop.run_in_executor(finisher, opened.commit)
        except BaseException:
            await loop.run_in_executor(finisher, opened.rollback)
            raise
        finally:
            await loop.run_in_executor(finisher, opened.close)

    # Committed when the route returns, before its answer is sent: the caller's next
    # request sees what this one wrote.
    # At most SESSIONS at once: with the token lookups' own, never more than the pool
    # holds, so no route waits for a connection while others wait for its thread.
    Db = Annotated[Session, Depends(session, scope="function", max_concurrency=SESSIONS)]

    def lookup(value: str, cookie: bool = False
               ) -> tuple[User, ApiToken | WebSession, Allowance] | None:
        with db.session() as own:  # its own, short: the route's session is not held
            found = (web.find_session(own, value) if cookie
                     else accounts.authenticate(own, value))
            if found is None:
                return None
            return (*found, count_request(own, found[0].id, settings.requests_per_minute))

    def caller(scope: str) -> Callable[..., Any]:
        async def authorize(request: Request,
                            authorization: Annotated[str | None, Header()] = None,
                            x_csrf_token: Annotated[str | None, Header()] = None,
                            rci_session: Annotated[str | None, Cookie(
                                include_in_schema=False)] = None
                            ) -> Caller:
            challenge = {"WWW-Authenticate": 'Bearer realm="rclaude-infra"'}
            scheme, _, value = (authorization or "").partition(" ")
            if authorization is None and rci_session:
                found = await asyncio.to_thread(lookup, rci_session, True)
                if found is None:
                    raise Problem(401, "the session has ended: sign in again",
                                  headers=challenge)
            elif scheme.lower() != "bearer" or not value:
                raise Problem(401, "an Authorization: Bearer <token> header (or a "
                              "signed-in browser's session) is needed", headers=challenge)
            else:
                found = await asyncio.to_thread(lookup, value.strip())
                if found is None:
                    raise Problem(401, "the token is not valid (unknown, or revoked)",
                                  headers=challenge)
            user, credential, allowance = found
            request.state.allowance = allowance
            if allowance.exceeded:
                raise Problem(429, f"more than {allowance.limit} requests this minute",
                              headers={**allowance.headers(),
                                       "Retry-After": str(allowance.reset)})
            if isinstance(credential, WebSession):
                # A browser's cookie goes with every request to this site, a forged one's
                # too: what changes anything carries the session's token as well.
                if request.method not in ("GET", "HEAD", "OPTIONS") and not web.csrf_ok(
                        credential, x_csrf_token):
                    raise Problem(403, "X-CSRF-Token: the session's token (GET "
                                  "/auth/session) is needed", field="X-CSRF-Token")
                who = Caller(user, None)
            else:
                who = Caller(user, credential)
            if scope not in who.scopes:
                raise Problem(403, f"the token lacks the scope {scope}", field="scopes")
            return who

        return authorize

    Reader = Annotated[Caller, Depends(caller("tasks:read"))]
    Writer = Annotated[Caller, Depends(caller("tasks:write"))]

    def owned(db_session: Session, who: Caller, task_id: str) -> TaskRecord:
        """The caller's task, or 404 (also for another user's: never 403)."""
        record = db_session.get(TaskRecord, task_id) if is_task_id(task_id) else None
        if record is None or record.user_id != who.user.id:
            raise Problem(404, "no such task")
        return record

    def handle(record: TaskRecord) -> "Task":
        """The record's task on the deployment; 409 while it waits to start."""
        if record.dispatched_at is None:
            state = ("it waits to start" if record.final_status is None
                     else f"it ended {record.final_status} before it started: "
                     f"{record.reason}")
            raise Problem(409, f"the task has not started: {state}")
        return runner.task(record.id)

    def task_json(record: TaskRecord) -> dict[str, Any]:
        spec = json.loads(record.spec)
        body: dict[str, Any] = {
            "id": record.id, "created_at": _iso(record.created_at),
            "prompt": spec.get("prompt"), "command": spec.get("command"),
            "repo": spec.get("repo"), "ref": spec.get("ref"), "exit_code": None,
            "attempt": 1, "started_at": None, "stopped_at": None}
        if record.dispatched_at is None:
            return {**body, "status": record.final_status or TaskStatus.QUEUED.value,
                    "reason": record.reason or "waiting for a dispatcher to start it"}
        try:
            state = runner.task(record.id).state()
        except TaskNotFoundError:
            return {**body, "status": TaskStatus.FAILED.value,
                    "reason": "the deployment has no such task any more"}
        if state.status.done and record.final_status is None:
            record.final_status = state.status.value
        return {**body, "status": state.status.value, "reason": state.reason,
                "exit_code": state.exit_code, "attempt": state.attempt,
                "started_at": _iso(state.started_at), "stopped_at": _iso(state.stopped_at)}

    def start(db_session: Session, who: Caller, fields: dict[str, Any],
              idempotency_key: str | None) -> tuple[TaskRecord, bool]:
        """The task for this request: a new one, or the one an earlier request with the
        same key started (``False``)."""
        digest = _digest(fields)
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200 or not idempotency_key.isprintable():
                raise Problem(422, "Idempotency-Key: 1 to 200 printable characters",
                              field="Idempotency-Key")
            earlier = db_session.scalar(select(TaskRecord).where(
                TaskRecord.user_id == who.user.id,
                TaskRecord.idempotency_key == idempotency_key))
            if earlier is not None:
                if earlier.request_hash != digest:
                    raise Problem(422, "this Idempotency-Key was used with another body",
                                  field="Idempotency-Key")
                return earlier, False
        repo = fields.get("repo")
        if repo is not None and not _repo_allowed(str(repo)):
            raise ConfigError("repo", repo, "an https://, http:// or ssh URL of a repository "
                              "(not a path on the service's machine)")
        return launch(db_session, who, TaskSpec.from_mapping(fields), digest,
                      idempotency_key), True

    def launch(db_session: Session, who: Caller, spec: TaskSpec, digest: str,
               idempotency_key: str | None = None) -> TaskRecord:
        """Record ``spec`` as the caller's, for a dispatcher to start with their secrets,
        within their limit of tasks not ended (the create and follow-up routes both start
        so)."""
        accounts.user_secrets(db_session, who.user.id, spec.secrets, allowed="names of "
                              "your secrets (PUT /v1/secrets/{name} first)")
        found = quotas.account(db_session, who.user.id, settings.plans)
        spec = quotas.held_to_plan(spec, found)
        number = quotas.claim(db_session, who.user.id, found,
                              lambda limit: running(db_session, who, limit),
                              ceiling=settings.max_concurrent_tasks)
        record = TaskRecord(id=spec.task_id, user_id=who.user.id,
                            idempotency_key=idempotency_key, request_hash=digest,
                            spec=json.dumps(spec.to_dict()), created_at=now(),
                            dispatch_attempts=0, execution_no=number,
                            period_start=found.period_start)
        db_session.add(record)
        try:
            db_session.flush()  # the key's uniqueness decides between two retries
        except IntegrityError:
            raise Problem(409, "a request with this Idempotency-Key is being handled; "
                          "retry", field="Idempotency-Key", headers={"Retry-After": "1"}
                          ) from None
        return record

    def finished(task: "Task") -> "TaskResult":
        """The task's result, or 409 saying why there is none."""
        try:
            return task.result()
        except TaskNotFoundError as exc:
            state = task.state()
            why = (f"it is {state.status.value}" if not state.status.done else
                   f"it ended {state.status.value} without one: {state.reason}")
            raise Problem(409, f"the task has no result: {why}") from exc

    def running(db_session: Session, who: Caller, limit: int) -> int:
        """The caller's tasks not ended. Those no look has seen end are counted; only at
        ``limit`` are they looked at now (some may have ended since the last look), so a
        request does not read the state of every task its caller has open."""
        counted = db_session.scalar(select(func.count()).select_from(TaskRecord).where(
            TaskRecord.user_id == who.user.id, TaskRecord.final_status.is_(None))) or 0
        if counted < limit:
            return counted
        open_ = db_session.scalars(select(TaskRecord).where(
            TaskRecord.user_id == who.user.id, TaskRecord.final_status.is_(None)).order_by(
            TaskRecord.created_at.desc()).limit(limit + MAX_PAGE))
        count = 0
        for record in open_:
            if record.dispatched_at is None:
                count += 1  # waiting to start
                continue
            try:
                state = runner.task(record.id).state()
            except TaskNotFoundError:
                record.final_status = TaskStatus.FAILED.value
                continue
            if state.status.done:
                record.final_status = state.status.value
            else:
                count += 1
        return count

    # -- health ---------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    def readyz(db_session: Db) -> dict[str, str]:
        """The database and the deployment's task store answer."""
        try:
            db_session.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error: not ready, saying so
            raise Problem(503, f"the database does not answer: {type(exc).__name__}") from exc
        try:
            runner.tasks(limit=1)
        except Exception as exc:
            raise Problem(503, f"the deployment does not answer: {exc}") from exc
        return {"status": "ready", "provider": runner.provider}

    # -- the caller and their tokens ------------------------------------------------

    @v1.get("/me", tags=["account"])
    def me(who: Reader, db_session: Db) -> dict[str, Any]:
        """The caller, the token they called with (``null`` from a signed-in browser),
        and the sign-in identities linked to them."""
        identities = db_session.scalars(select(Identity).where(
            Identity.user_id == who.user.id).order_by(Identity.id))
        return {"id": who.user.id, "email": who.user.email, "name": who.user.name,
                "is_admin": who.user.is_admin,
                "identities": [{"provider": i.provider, "linked_at": _iso(i.created_at)}
                               for i in identities],
                "scopes": sorted(who.scopes),
                "token": None if who.token is None else {
                    "id": who.token.id, "name": who.token.name,
                    "scopes": sorted(who.scopes)}}

    def token_json(token: ApiToken) -> dict[str, Any]:
        return {"id": token.id, "name": token.name, "prefix": token.prefix,
                "scopes": token.scopes.split(), "created_at": _iso(token.created_at),
                "last_used_at": _iso(token.last_used_at),
                "revoked_at": _iso(token.revoked_at)}

    @v1.get("/tokens", tags=["account"])
    def list_tokens(who: Reader, db_session: Db) -> dict[str, Any]:
        """The caller's tokens (never their values)."""
        tokens = db_session.scalars(select(ApiToken).where(
            ApiToken.user_id == who.user.id).order_by(ApiToken.id))
        return {"tokens": [token_json(t) for t in tokens]}

    @v1.post("/tokens", tags=["account"], status_code=201)
    def new_token(body: TokenRequest, who: Writer, db_session: Db) -> dict[str, Any]:
        """A new token for the caller; its value is in this answer only."""
        token, value = accounts.create_token(db_session, who.user, name=body.name,
                                             scopes=tuple(body.scopes))
        return {**token_json(token), "token": value}

    @v1.delete("/tokens/{token_id}", tags=["account"], status_code=204)
    def revoke_token(token_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], who: Writer,
                     db_session: Db) -> Response:
        """Revoke one of the caller's tokens (the one in use too)."""
        token = db_session.get(ApiToken, token_id)
        if token is None or token.user_id != who.user.id:
            raise Problem(404, "no such token")
        if token.revoked_at is None:
            token.revoked_at = now()
        return Response(status_code=204)

    # -- tasks ----------------------------------------------------------------------

    @v1.post("/tasks", tags=["tasks"], status_code=201,
              responses={409: {"description": "over the deployment's budget"},
                         422: {"description": "a field is not allowed"},
                         429: {"description": "too many tasks not ended"}})
    def create_task(body: TaskRequest, who: Writer, db_session: Db, response: Response,
                    after: BackgroundTasks,
                    idempotency_key: Annotated[str | None, Header()] = None
                    ) -> dict[str, Any]:
        """Start a task: it is recorded, ``QUEUED``, and a dispatcher starts it at once.
        The same ``Idempotency-Key`` again returns the same task; with another body it is
        a 422."""
        record, _ = start(db_session, who, body.model_dump(exclude_none=True),
                          idempotency_key)
        after.add_task(wake)  # once the record is committed
        response.headers["Location"] = f"/v1/tasks/{record.id}"
        return task_json(record)

    @v1.get("/tasks", tags=["tasks"])
    def list_tasks(who: Reader, db_session: Db,
                   limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
                   cursor: str | None = None,
                   status: TaskStatus | None = None) -> dict[str, Any]:
        """The caller's tasks, newest first; ``next_cursor`` pages on."""
        query = select(TaskRecord).where(TaskRecord.user_id == who.user.id)
        if cursor is not None:
            after = db_session.get(TaskRecord, cursor) if is_task_id(cursor) else None
            if after is None or after.user_id != who.user.id:
                raise Problem(422, "cursor: a next_cursor this listing returned",
                              field="cursor")
            query = query.where(or_(TaskRecord.created_at < after.created_at, and_(
                TaskRecord.created_at == after.created_at, TaskRecord.id < after.id)))
        query = query.order_by(TaskRecord.created_at.desc(), TaskRecord.id.desc())
        found: list[dict[str, Any]] = []
        last: str | None = None
        more = False
        for record in db_session.scalars(query.limit(MAX_PAGE * 5)):
            if len(found) == limit:
                more = True
                break
            last = record.id
            item = task_json(record)
            if status is None or item["status"] == status.value:
                found.append(item)
        return {"tasks": found, "next_cursor": last if more else None}

    @v1.get("/tasks/{task_id}", tags=["tasks"], responses={404: {}})
    def get_task(task_id: str, who: Reader, db_session: Db) -> dict[str, Any]:
        return task_json(owned(db_session, who, task_id))

    @v1.post("/tasks/{task_id}/cancel", tags=["tasks"], responses={404: {}})
    def cancel_task(task_id: str, who: Writer, db_session: Db) -> dict[str, Any]:
        """Stop the task (nothing when it has ended); its work so far is kept. A task not
        started yet never starts."""
        record = owned(db_session, who, task_id)
        # One statement decides against a dispatcher starting it now: either this marks
        # it first (the dispatcher then stops what it started), or the dispatcher's start
        # is recorded first and the task is stopped below.
        marked = db_session.execute(
            update(TaskRecord).where(TaskRecord.id == record.id,
                                     TaskRecord.dispatched_at.is_(None),
                                     TaskRecord.final_status.is_(None))
            .values(final_status=TaskStatus.STOPPED.value,
                    reason=f"cancelled by {who.user.email} before it started"))
        db_session.refresh(record)
        if marked.rowcount or record.dispatched_at is None:  # type: ignore[attr-defined]
            return task_json(record)
        task = handle(record)
        if not task.status.done:
            task.stop(f"cancelled by {who.user.email}")
        return task_json(record)

    @v1.post("/tasks/{task_id}/follow-up", tags=["tasks"], status_code=201,
              responses={404: {}})
    def follow_up(task_id: str, body: FollowUp, who: Writer, db_session: Db,
                  response: Response, after: BackgroundTasks) -> dict[str, Any]:
        """A new task that goes on from this one's agent session and work, with
        ``prompt``."""
        record = owned(db_session, who, task_id)
        spec = handle(record).resume_spec(body.prompt)
        new = launch(db_session, who, spec, _digest(spec.to_dict()))
        after.add_task(wake)
        response.headers["Location"] = f"/v1/tasks/{new.id}"
        return task_json(new)

    @v1.get("/tasks/{task_id}/result", tags=["tasks"],
             responses={404: {}, 409: {"description": "no result yet"}})
    def task_result(task_id: str, who: Reader, db_session: Db) -> dict[str, Any]:
        """Its outcome: status, cost, the agent's tokens and summary, the diff's size."""
        task = handle(owned(db_session, who, task_id))
        result = finished(task)
        cost = task.cost()
        agent = result.agent
        # The status as the deployment saw the task end (as everywhere in the API), not
        # the runner's own word in its result.
        return {"id": task.task_id, "status": task.state().status.value,
                "exit_code": result.exit_code,
                "reason": result.reason, "cost": cost.to_dict(),
                "diff": result.data.get("diff"), "check": result.data.get("check"),
                "agent": None if agent is None else {
                    "subtype": agent.subtype, "turns": agent.turns, "text": agent.text,
                    "usage": dict(agent.usage), "model": agent.model,
                    "session_id": agent.session_id,
                    "cost_usd": agent.cost_usd},
                "branch": result.branch, "pull_request_url": result.pull_request_url}

    @contextlib.contextmanager
    def files_of(db_session: Session, who: Caller, task_id: str,
                 names: "Collection[str] | None" = None
                 ) -> "Iterator[tuple[Path, Downloaded]]":
        """The task's files (``names``: those only), downloaded into a folder of this
        request's (what the task named outside it, or as a link, is skipped by the
        download itself)."""
        task = handle(owned(db_session, who, task_id))
        result = finished(task)
        with tempfile.TemporaryDirectory(prefix="rclaude-files-") as folder:
            found = result.download(folder, names=names)
            yield Path(folder) / task.task_id, found

    @v1.get("/tasks/{task_id}/diff", tags=["tasks"], response_class=PlainTextResponse,
             responses={404: {}, 409: {"description": "no result yet"}})
    def task_diff(task_id: str, who: Reader, db_session: Db) -> PlainTextResponse:
        """The work as a patch (``text/x-diff``; empty when there was no change)."""
        return PlainTextResponse(patch_of(db_session, who, task_id), media_type="text/x-diff")

    def patch_of(db_session: Session, who: Caller, task_id: str) -> str:
        with files_of(db_session, who, task_id, {"diff.patch"}) as (root, _):
            patch = root / "diff.patch"
            return patch.read_text(errors="replace") if patch.is_file() else ""

    @v1.get("/tasks/{task_id}/diff/files", tags=["tasks"],
             responses={404: {}, 409: {"description": "no result yet"}})
    def task_diff_files(task_id: str, who: Reader, db_session: Db) -> dict[str, Any]:
        """The patch file by file, each line with its numbers and its code as highlighted
        tokens (``[class, text]``, Pygments' short classes): what the dashboard draws."""
        return {"files": diff_files(patch_of(db_session, who, task_id))}

    @v1.get("/tasks/{task_id}/files", tags=["tasks"],
             responses={404: {}, 409: {"description": "no result yet"}})
    def task_files(task_id: str, who: Reader, db_session: Db) -> dict[str, Any]:
        """What the task left: its result, log, diff, transcript and artifacts, each with
        its size; and what it named that was not taken (outside its folder, a link)."""
        with files_of(db_session, who, task_id) as (root, found):
            files = [{"name": path.relative_to(root).as_posix(), "size": path.stat().st_size}
                     for path in sorted(found) if path.is_file()]
        return {"files": files, "skipped": [{"name": name, "why": why}
                                            for name, why in found.skipped]}

    @v1.get("/tasks/{task_id}/files/{name:path}", tags=["tasks"],
             response_class=Response, responses={
                 200: {"content": {"application/octet-stream": {}}}, 404: {},
                 409: {"description": "no result yet"},
                 413: {"description": "larger than a download here allows"}})
    def task_file(task_id: str, name: str, who: Reader, db_session: Db) -> Response:
        """One of the task's files (a name ``/files`` listed), as an attachment."""
        with files_of(db_session, who, task_id, {name}) as (root, found):
            listed = {path.relative_to(root).as_posix(): path for path in found
                      if path.is_file()}
            path = listed.get(name)
            if path is None:
                raise Problem(404, "no such file of this task's", field="name")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise Problem(413, f"{name} is larger than {MAX_FILE_BYTES} bytes: "
                              "download the task's files with the CLI")
            body = path.read_bytes()
        filename = name.rsplit("/", 1)[-1]
        return Response(body, media_type="application/octet-stream", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "X-Content-Type-Options": "nosniff"})

    @v1.get("/tasks/{task_id}/logs", tags=["tasks"], responses={404: {}})
    def task_logs(task_id: str, who: Reader, db_session: Db) -> dict[str, Any]:
        """Its output so far, a line each (none while it waits to start)."""
        record = owned(db_session, who, task_id)
        lines = runner.task(record.id).logs() if record.dispatched_at is not None else []
        return {"lines": [{"time": _iso(line.time), "text": line.text} for line in lines]}

    @v1.get("/tasks/{task_id}/events", tags=["tasks"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}, 404: {},
                        422: {"description": "a Last-Event-ID this stream did not send"}})
    def task_events(task_id: str, who: Reader, db_session: Db,
                    last_event_id: Annotated[str | None, Header()] = None
                    ) -> StreamingResponse:
        """Server-Sent Events: ``log`` for each line of output and ``status`` for each
        change, ending after the task's end. ``Last-Event-ID`` goes on after that event,
        with nothing missed or repeated."""
        owned(db_session, who, task_id)
        lines, status = events.resume_point(last_event_id)
        watch = watches.of(task_id, lambda: look(task_id))
        return StreamingResponse(events.stream(watch, lines, status),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    def look(task_id: str) -> tuple[dict[str, Any], list["LogLine"]]:
        """The task as the API shows it, then its lines (read after: once it shows the
        task ended, they are all of them)."""
        with db.session() as fresh:
            record = fresh.get(TaskRecord, task_id)
            assert record is not None
            described = task_json(record)
            started = record.dispatched_at is not None
        return described, list(runner.task(task_id).logs()) if started else []

    def secret_json(row: UserSecret) -> dict[str, Any]:
        return {"name": row.name, "created_at": _iso(row.created_at),
                "updated_at": _iso(row.updated_at)}

    def secret_name(name: str) -> str:
        if len(name) > 128 or not is_env_name(name):
            raise Problem(422, "name: an environment variable name (MY_TOKEN), at most 128 "
                          "characters", field="name")
        return name

    def own_secret(db_session: Session, who: Caller, name: str) -> UserSecret:
        row = db_session.scalar(select(UserSecret).where(
            UserSecret.user_id == who.user.id, UserSecret.name == secret_name(name)))
        if row is None:
            raise Problem(404, "no such secret")
        return row

    @v1.get("/secrets", tags=["secrets"])
    def list_secrets(who: Reader, db_session: Db) -> dict[str, Any]:
        """The caller's secrets: names and times, never values."""
        rows = db_session.scalars(select(UserSecret).where(
            UserSecret.user_id == who.user.id).order_by(UserSecret.name))
        return {"secrets": [secret_json(row) for row in rows]}

    @v1.put("/secrets/{name}", tags=["secrets"],
            responses={201: {"description": "a new secret"}})
    def put_secret(name: str, body: SecretValue, who: Writer, db_session: Db,
                   response: Response) -> dict[str, Any]:
        """Store a secret (write-only: its value is never returned), encrypted."""
        name = secret_name(name)
        if "\x00" in body.value:
            raise Problem(422, "value: text without NUL bytes", field="value")
        row = db_session.scalar(select(UserSecret).where(
            UserSecret.user_id == who.user.id, UserSecret.name == name))
        sealed = vault.seal(who.user.id, name, body.value)
        if row is None:
            row = UserSecret(user_id=who.user.id, name=name, ciphertext=sealed,
                             created_at=now(), updated_at=now())
            db_session.add(row)
            response.status_code = 201
        else:
            row.ciphertext, row.updated_at = sealed, now()
        db_session.flush()
        return secret_json(row)

    @v1.get("/secrets/{name}", tags=["secrets"])
    def get_secret(name: str, who: Reader, db_session: Db) -> dict[str, Any]:
        """A secret's name and times (never its value)."""
        return secret_json(own_secret(db_session, who, name))

    @v1.delete("/secrets/{name}", tags=["secrets"], status_code=204)
    def delete_secret(name: str, who: Writer, db_session: Db) -> Response:
        db_session.delete(own_secret(db_session, who, name))
        return Response(status_code=204)

    # -- the CLI's sign-in (RFC 8628) ---------------------------------------------------

    @app.post("/device/code", tags=["sign-in"], responses={
        429: {"description": "too many sign-ins pending", "model": ProblemDetails}})
    def device_code(request: Request, db_session: Db) -> dict[str, Any]:
        """Start a device sign-in: the code to show, where to approve it."""
        made = device.new_code(db_session)
        if made is None:
            raise Problem(429, "too many sign-ins are pending; try again in a minute",
                          headers={"Retry-After": "60"})
        row, code = made
        where = (settings.public_url or str(request.base_url).rstrip("/")) + "/device"
        return {"device_code": code, "user_code": row.user_code, "verification_uri": where,
                "verification_uri_complete": f"{where}?user_code={row.user_code}",
                "expires_in": device.EXPIRES_SECONDS,
                "interval": settings.device_interval}

    @app.post("/device/token", tags=["sign-in"],
              responses={400: {"description": "RFC 8628 error: authorization_pending, "
                                              "slow_down, access_denied, expired_token"}})
    def device_token(body: DevicePoll, db_session: Db) -> Any:
        """Poll a device sign-in: the token once approved (RFC 8628, section 3.4)."""
        if body.grant_type != device.GRANT_TYPE:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        error, token = device.poll(db_session, body.device_code, settings.device_interval)
        if token is None:
            return JSONResponse({"error": error}, status_code=400,
                                headers={"Cache-Control": "no-store"})
        return {"access_token": token, "token_type": "Bearer",
                "scope": " ".join(accounts.DEFAULT_SCOPES)}

    @v1.post("/device/approve", tags=["sign-in"])
    def device_approve(body: DeviceApproval, who: Writer, db_session: Db) -> dict[str, Any]:
        """Approve (or with ``deny``, refuse) the code a CLI shows: it then gets a token
        of the caller's."""
        if not device.approve(db_session, who.user, body.user_code, deny=body.deny):
            raise Problem(404, "no pending code like that (expired, or used)",
                          field="user_code")
        return {"user_code": device.normal_user_code(body.user_code),
                "approved": not body.deny}

    @v1.get("/usage", tags=["account"])
    def usage(who: Reader, db_session: Db) -> dict[str, Any]:
        """The caller's billing period so far, from the usage records of their ended
        tasks: executions against the plan's allowance, cost (model and compute) in all,
        by day (UTC) and by repository (the most costly first)."""
        record_usage(db_session, settings.plans,
                     lambda record: ledger_usage(runner, record), billing=billing is not None,
                     user_id=who.user.id)  # those ended since the last pass, now
        found = quotas.account(db_session, who.user.id, settings.plans)
        rows = db_session.execute(select(UsageRecord, TaskRecord.created_at, TaskRecord.spec)
                                  .join(TaskRecord, TaskRecord.id == UsageRecord.task_id)
                                  .where(UsageRecord.user_id == who.user.id,
                                         UsageRecord.period_start == found.period_start))
        tasks, compute, model, tokens = 0, 0, 0, [0, 0]
        days: dict[str, list[int]] = {}
        repos: dict[str, list[int]] = {}
        for record, created_at, spec in rows:
            if not record.executions:
                continue  # never started: it cost nothing
            tasks += 1
            compute += record.compute_micro_usd
            model += record.model_micro_usd
            tokens[0] += record.input_tokens
            tokens[1] += record.output_tokens
            day = days.setdefault(created_at.date().isoformat(), [0, 0, 0])
            repo = repos.setdefault(json.loads(spec).get("repo") or "(none)", [0, 0])
            day[0] += 1
            day[1] += record.compute_micro_usd
            day[2] += record.model_micro_usd
            repo[0] += 1
            repo[1] += record.compute_micro_usd + record.model_micro_usd
        used = quotas.executions_used(db_session, who.user.id, found.period_start)
        return {"since": _iso(found.period_start), "until": _iso(found.period_end),
                "plan": found.plan.to_dict(), "limits": found.limits.to_dict(),
                "executions": used, "allowance": found.limits.monthly_executions,
                "tasks": tasks, "compute_usd": usd(compute), "model_usd": usd(model),
                "total_usd": usd(compute + model), "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "days": [{"date": d, "tasks": v[0], "compute_usd": usd(v[1]),
                          "model_usd": usd(v[2])} for d, v in sorted(days.items())],
                "repos": [{"repo": r, "tasks": v[0], "total_usd": usd(v[1])} for r, v in
                          sorted(repos.items(), key=lambda item: -item[1][1])[:10]]}

    # -- plans and billing ----------------------------------------------------------

    @v1.get("/billing", tags=["billing"])
    def billing_state(who: Reader, db_session: Db) -> dict[str, Any]:
        """The caller's plan, its limits and period, the subscription's state, the plans
        offered, and whether this service bills through Stripe (without it, admins
        assign plans)."""
        found = quotas.account(db_session, who.user.id, settings.plans)
        return {**found.to_dict(), "stripe": billing is not None,
                "executions": quotas.executions_used(db_session, who.user.id,
                                                     found.period_start),
                "can_manage": found.customer is not None,
                "plans": [p.to_dict() for p in settings.plans.plans.values()]}

    def stripe_billing() -> Billing:
        if billing is None:
            raise Problem(409, "billing is not set up on this service: an admin assigns "
                          "plans (rclaude-infra users plan EMAIL PLAN)")
        return billing

    def site(request: Request) -> str:
        return settings.public_url or str(request.base_url).rstrip("/")

    @v1.post("/billing/checkout", tags=["billing"],
             responses={409: {"description": "no billing, or already on the plan"}})
    def checkout(who: Writer, db_session: Db, request: Request) -> dict[str, str]:
        """A Stripe Checkout page to subscribe to Pro: go to its ``url``."""
        stripe_ = stripe_billing()
        found = quotas.account(db_session, who.user.id, settings.plans)
        if found.plan.name != "free":
            raise Problem(409, f"you are on the {found.plan.title} plan already; manage it "
                          "from the billing portal")
        url = stripe_.checkout_url(db_session, who.user,
                                   success_url=f"{site(request)}/usage?subscribed=1",
                                   cancel_url=f"{site(request)}/usage")
        return {"url": url}

    @v1.post("/billing/portal", tags=["billing"],
             responses={409: {"description": "no billing, or no subscription"}})
    def portal(who: Writer, db_session: Db, request: Request) -> dict[str, str]:
        """Stripe's Customer Portal, to change the card or cancel: go to its ``url``."""
        return {"url": stripe_billing().portal_url(db_session, who.user,
                                                   return_url=f"{site(request)}/usage")}

    @v1.post("/billing/stripe/webhook", tags=["billing"],
             responses={400: {"description": "not signed by Stripe"},
                        409: {"description": "billing is not set up"}})
    async def stripe_webhook(request: Request) -> dict[str, Any]:
        """Stripe's events (signed with the webhook's secret), each applied once."""
        stripe_ = stripe_billing()
        payload = await request.body()
        event = stripe_.verified(payload, request.headers.get("stripe-signature"))

        def apply() -> str:
            with db.session() as db_session:
                return stripe_.handle(db_session, event)
        try:
            done = await asyncio.to_thread(apply)
        except IntegrityError:  # the same event at once from two deliveries: one applied
            done = "already handled"
        log.info("stripe %s %s: %s", event.get("type"), event.get("id"), done)
        return {"received": True, "result": done}

    Admin = Annotated[Caller, Depends(caller("admin"))]
    estimates: dict[str, Any] = {}

    def estimate() -> dict[str, Any]:
        """The deployment's monthly estimate from its offline plan (made once a process:
        it runs the Pulumi program under mocks)."""
        if not estimates:
            try:
                found = runner.estimate_cost()
                estimates.update(idle_monthly_usd=found.idle_monthly,
                                 monthly_usd=found.monthly, error=None)
            except Exception as exc:  # no plan here (no Pulumi SDK?): say why
                estimates.update(idle_monthly_usd=None, monthly_usd=None,
                                 error=f"{type(exc).__name__}: {exc}")
        return dict(estimates)

    @v1.get("/admin/overview", tags=["admin"])
    def admin_overview(who: Admin, db_session: Db) -> dict[str, Any]:
        """For admins: every user with this month's tasks, and the service's deployment
        (where its tasks run, this month's spend, its estimate)."""
        month = now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        counts = dict(db_session.execute(select(TaskRecord.user_id, func.count()).where(
            TaskRecord.created_at >= month).group_by(TaskRecord.user_id)).all())
        users = db_session.scalars(select(User).order_by(User.id)).all()
        try:
            spent: float | None = runner.spend(month).total_usd
        except Exception:  # the deployment's records unreadable now: shown as unknown
            spent = None
        config = runner.config
        def user_json(u: User) -> dict[str, Any]:
            found = quotas.account(db_session, u.id, settings.plans)
            return {"id": u.id, "email": u.email, "name": u.name, "is_admin": u.is_admin,
                    "created_at": _iso(u.created_at),
                    "tasks_this_month": int(counts.get(u.id, 0)), "plan": found.plan.name,
                    "subscription_status": None if found.subscription is None
                    else found.subscription.status,
                    "executions": quotas.executions_used(db_session, u.id,
                                                         found.period_start),
                    "allowance": found.limits.monthly_executions,
                    "spent_usd": quotas.spent_usd(db_session, u.id, found.period_start)}

        return {"users": [user_json(u) for u in users],
                "deployment": {"name": runner.name, "provider": runner.provider,
                               "region": config.region,
                               "plan": {"instance_types": list(config.instance_types),
                                        "spot": config.spot, "nat": config.nat,
                                        "min_instances": config.min_instances,
                                        "max_instances": config.max_instances},
                               "status": live_status(),
                               "spend_this_month_usd": spent, **estimate()}}

    def live_status() -> dict[str, Any]:
        """The deployment now: its cluster (ECS), instances and the tasks not ended; what
        went wrong in reading it, when it could not be read."""
        try:
            found = runner.status()
        except Exception as exc:  # the cloud unreachable now: the page says why
            return {"error": f"{type(exc).__name__}: {exc}"}
        outputs = found.outputs
        return {"error": None, "cluster": None if outputs is None else outputs.cluster_name,
                "instances": [{"type": i.instance_type, "lifecycle": i.lifecycle,
                               "status": i.status, "running": i.running_tasks,
                               "agent_connected": i.agent_connected}
                              for i in found.instances],
                "tasks_not_ended": len(found.tasks)}

    app.include_router(v1)

    @app.middleware("http")
    async def _no_store(request: Request, call_next: Any) -> Any:
        answer = await call_next(request)
        answer.headers.setdefault("Cache-Control", "no-store")
        allowance = getattr(request.state, "allowance", None)
        if allowance is not None:
            for key, value in allowance.headers().items():
                answer.headers.setdefault(key, value)
        return answer

    return app
