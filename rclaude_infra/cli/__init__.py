"""The ``rclaude-infra`` command line (also ``python -m rclaude_infra``).

Verbs: ``init`` (and ``init-deployment``), ``check``, ``plan``, ``cost``, ``preview``,
``up``, ``status``, ``run``, ``logs``, ``tasks``, ``result``, ``stop``, ``destroy``; the
service's ``serve``, ``db upgrade``, ``users add``, ``tokens create``; ``login`` and
``logout`` to one. Read
verbs take ``--json``. Settings come from ``./rclaude.toml`` (``DeploymentConfig``
fields, plus ``name``, ``provider`` and ``backend``), and flags override them.

Exit codes: 0 ok; 1 an error while working, a failed check, or a followed task that
failed without an exit code of its own; a followed task's own non-zero exit code; 2 bad
input (a flag, the config file or a value: the message names the field); 130 when
following is interrupted (the task keeps running).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import ConfigError, RclaudeError
from . import _init, _login, _offline, _service, _stack, _tasks
from ._common import DEFAULT_CONFIG_FILE, Aborted, local_tasks_hint

__all__ = ["DEFAULT_CONFIG_FILE", "main"]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line's parser, and each verb's own."""
    parser = argparse.ArgumentParser(
        prog="rclaude-infra",
        description="Provision, run and price an AWS ECS-on-EC2 stack for coding-agent tasks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_init, _stack, _offline, _tasks, _service, _login):
        module.add_parsers(commands)
    return parser, dict(commands.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser, verbs = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the verb, with its own usage (the top level's shows no flags)
        verbs[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"rclaude-infra: error: {exc}", file=sys.stderr)
        return 2
    except Aborted as exc:
        print(f"rclaude-infra: {exc}", file=sys.stderr)
        return 1
    except RclaudeError as exc:
        if args.debug:
            raise
        hint = local_tasks_hint(args, exc)
        print(f"rclaude-infra: error: {hint}" if hint else f"rclaude-infra: error: {exc}",
              file=sys.stderr)
        if hint:
            print(f"(looking for the deployed stack instead: {exc})", file=sys.stderr)
        # A service's 400 or 422 is a bad input, as a ConfigError is here.
        return 2 if getattr(exc, "status", None) in (400, 422) else 1
    except KeyboardInterrupt:
        print("rclaude-infra: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
