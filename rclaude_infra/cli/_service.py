"""``serve``, ``db upgrade``, ``users add`` and ``tokens create``: the hosted service and
its administration (``pip install rclaude-infra[service]``; imported only when run)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import MissingDependencyError
from ._common import emit_json, json_argument, note, verb


def _service_settings(args: argparse.Namespace) -> Any:
    import os

    try:
        from ..service.settings import ServiceSettings, expand_settings_secret
    except ImportError as exc:  # the extra is not installed
        raise MissingDependencyError(exc.name or "fastapi", "The service") from exc
    expand_settings_secret(os.environ)
    return ServiceSettings.from_env(
        deployment=getattr(args, "deployment", None), provider=getattr(args, "provider", None),
        max_concurrent_tasks=getattr(args, "max_concurrent_tasks", None),
        requests_per_minute=getattr(args, "requests_per_minute", None),
        dispatch=False if getattr(args, "no_dispatch", False) else None)


def add_parsers(commands: Any) -> None:
    serve = verb(commands, "serve", "run the hosted service (HTTP API) on this machine",
                 _serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on "
                       "(default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--deployment", default=None, metavar="NAME",
                       help="the deployment whose tasks it runs (default 'service')")
    serve.add_argument("--provider", choices=("local", "ecs-ec2"), default=None,
                       help="where its tasks run (default local: subprocesses here)")
    serve.add_argument("--max-concurrent-tasks", type=int, default=None, metavar="N",
                       help="tasks a user may have not ended at once (default 10)")
    serve.add_argument("--requests-per-minute", type=int, default=None, metavar="N",
                       help="requests a user may make in a minute (default 600)")
    serve.add_argument("--no-dispatch", action="store_true",
                       help="answer the API only: `rclaude-infra worker` processes start "
                       "the tasks")
    worker = verb(commands, "worker", "start the service's recorded tasks and record their "
                  "ends (beside `serve --no-dispatch` processes on one database)", _worker,
                  json_argument)
    worker.add_argument("--deployment", default=None, metavar="NAME",
                        help="the deployment whose tasks it runs (default 'service')")
    worker.add_argument("--provider", choices=("local", "ecs-ec2"), default=None,
                        help="where its tasks run (default local)")
    worker.add_argument("--once", action="store_true",
                        help="one round, then exit (from cron, or to drain a queue)")
    worker.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                        help="seconds between two looks for new tasks (default 1)")
    db = verb(commands, "db", "the service's database: `db upgrade` runs its migrations",
              _db, json_argument)
    db.add_argument("action", choices=("upgrade",))
    users = verb(commands, "users", "the service's users: `users add EMAIL [--admin]`, "
                 "`users login-link EMAIL`, `users plan EMAIL PLAN [--executions N ...]`",
                 _users, json_argument)
    users.add_argument("action", choices=("add", "login-link", "plan"),
                       help="add a user, print a one-time sign-in link for one (good "
                       "for 15 minutes; for a service with no OAuth), or put one on a plan")
    users.add_argument("email")
    users.add_argument("plan", nargs="?", default=None,
                       help="plan: the plan's name (free, pro, enterprise, or the plans "
                       "file's)")
    for flag, kind, what in (("--executions", int, "executions a billing period"),
                             ("--concurrency", int, "tasks at once"),
                             ("--task-budget", float, "model USD a task"),
                             ("--monthly-spend", float, "USD a billing period")):
        users.add_argument(flag, type=kind, default=None, metavar="N",
                           help=f"plan: this user's own limit of {what}, over the plan's")
    users.add_argument("--server", default=None, metavar="URL",
                       help="login-link: the service's URL (default $RCLAUDE_PUBLIC_URL, "
                       "else http://127.0.0.1:8000)")
    users.add_argument("--name", default=None)
    users.add_argument("--admin", action="store_true", help="may administer the service")
    tokens = verb(commands, "tokens", "API tokens: `tokens create EMAIL [--name NAME] "
                  "[--scope SCOPE ...]` prints a new token once", _tokens, json_argument)
    tokens.add_argument("action", choices=("create",))
    tokens.add_argument("email")
    tokens.add_argument("--name", default="cli", help="what the token is for")
    tokens.add_argument("--scope", action="append", default=None, dest="scopes",
                        metavar="SCOPE",
                        help="tasks:read, tasks:write or admin (repeatable; default "
                        "tasks:read and tasks:write)")


def _database(args: argparse.Namespace) -> Any:
    from ..service.store import Database, make_engine, migrate

    engine = make_engine(_service_settings(args))
    migrate(engine)
    return Database(engine)


def _serve(args: argparse.Namespace) -> int:
    from ..service.server import serve

    settings = _service_settings(args)
    note(f"rclaude-infra service on http://{args.host}:{args.port} (database "
         f"{settings.database_url.split('@')[-1]}, tasks: {settings.provider})")
    serve(settings, host=args.host, port=args.port)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..service.server import work

    if not 0.05 <= args.poll <= 3600:
        raise ConfigError("--poll", args.poll, "seconds between 0.05 and 3600")
    settings = _service_settings(args)
    if not args.once:
        note(f"rclaude-infra worker on {settings.database_url.split('@')[-1]} (tasks: "
             f"{settings.provider}); Ctrl-C stops it")
    taken = work(settings, once=args.once, poll_seconds=args.poll)
    if args.json:
        emit_json({"taken": taken})
    else:
        note(f"the worker took {taken} task(s)")
    return 0


def _db(args: argparse.Namespace) -> int:
    from ..service.store import make_engine, migrate

    revision = migrate(make_engine(_service_settings(args)))
    if args.json:
        emit_json({"revision": revision})
    else:
        note(f"the database is at revision {revision}")
    return 0


def _users(args: argparse.Namespace) -> int:
    from ..service import accounts

    if args.action == "login-link":
        return _login_link(args)
    if args.action == "plan":
        return _plan(args)

    with _database(args).session() as session:
        user = accounts.add_user(session, args.email, name=args.name, admin=args.admin)
        shown = {"id": user.id, "email": user.email, "is_admin": user.is_admin}
    if args.json:
        emit_json(shown)
    else:
        note(f"added {shown['email']}" + (" (admin)" if shown["is_admin"] else ""))
    return 0


def _login_link(args: argparse.Namespace) -> int:
    from ..credentials import check_server
    from ..service import accounts, web

    settings = _service_settings(args)
    base = check_server(args.server or settings.public_url or "http://127.0.0.1:8000")
    with _database(args).session() as session:
        value = web.new_login_link(session, accounts.user_by_email(session, args.email))
    link = f"{base}/auth/link?token={value}"
    if args.json:
        emit_json({"email": args.email, "link": link, "minutes": web.LINK_MINUTES})
    else:
        note(f"a sign-in link for {args.email}, good once for {web.LINK_MINUTES} minutes:")
        print(link, flush=True)
    return 0


def _tokens(args: argparse.Namespace) -> int:
    from ..service import accounts

    with _database(args).session() as session:
        user = accounts.user_by_email(session, args.email)
        token, value = accounts.create_token(
            session, user, name=args.name,
            scopes=tuple(args.scopes) if args.scopes else accounts.DEFAULT_SCOPES)
        name, scopes = token.name, token.scopes.split()
        shown = {"id": token.id, "name": name, "scopes": scopes, "token": value}
    if args.json:
        emit_json(shown)
    else:
        note(f"token {name!r} for {args.email} ({' '.join(scopes)}); it is shown this once:")
        print(value, flush=True)
    return 0


def _plan(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..service import accounts, quotas

    if args.plan is None:
        raise ConfigError("plan", None, "a plan's name after the email (users plan EMAIL "
                          "PLAN)")
    settings = _service_settings(args)
    overrides = {"monthly_executions": args.executions, "concurrency": args.concurrency,
                 "task_budget_usd": args.task_budget, "monthly_spend_usd": args.monthly_spend}
    with _database(args).session() as session:
        user = accounts.user_by_email(session, args.email)
        found = quotas.assign_plan(session, user.id, settings.plans, args.plan, overrides)
        shown = {"email": user.email, **found.to_dict()}
    if args.json:
        emit_json(shown)
    else:
        limits = found.limits
        note(f"{shown['email']} is on the {found.plan.title} plan: "
             f"{limits.monthly_executions or 'unlimited'} executions a billing period, "
             f"{limits.concurrency} at once")
    return 0
