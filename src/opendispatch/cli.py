"""`opendispatch demo | console | serve | doctor`."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Mapping, Sequence
from functools import partial

import attrs
import trio

from .config import Config, Problem, read_environment
from .domain.errors import ConfigError
from .domain.redaction import Redactor
from .logs import configure_logging
from .validation import check_database, listen_problem, validate


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opendispatch", description="Run AI coding agents in sprites from chat.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the service does")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run the embedded default with a throwaway project",
        description="Run the embedded default (console chat, local sprites, SQLite; no configuration, no "
        "network) on a throwaway project: scripted when stdin is not a terminal, a prompt when it is.",
    )
    mode = demo.add_mutually_exclusive_group()
    mode.add_argument("--script", action="store_true", help="run the scripted demo even on a terminal")
    mode.add_argument("--interactive", action="store_true", help="type the commands yourself")
    demo.add_argument(
        "--sprites",
        choices=("local", "fly-emulator"),
        help="where jobs run: local subprocesses (default) or Fly Machines on the built-in API emulator",
    )
    demo.add_argument(
        "--agent",
        choices=("claude", "opencode"),
        help="the scripted demo runs this real agent CLI (on PATH, with its model settings passed "
        "through: see docs/agents.md) instead of shell jobs",
    )
    commands.add_parser(
        "console",
        help="an interactive prompt on the embedded default (throwaway project)",
        description="An interactive prompt on the embedded default: console chat, local sprites, SQLite, "
        "a throwaway project. Type the slash commands (/od-run, /od-jobs, /od-help ...); quit or Ctrl-D ends it.",
    )
    commands.add_parser(
        "serve",
        help="run the service from configuration until SIGTERM/SIGINT",
        description="Run the service from configuration (environment variables, or a .env file here) until "
        "SIGTERM/SIGINT: the webhook server, the chat connection, one task per job. Refuses to start, "
        "listing every problem, when the configuration is incomplete; `opendispatch doctor` shows the same.",
    )
    commands.add_parser(
        "doctor",
        help="show what is configured and what is missing (no secrets printed)",
        description="Show what is configured and what is missing for the chosen chat provider and sprite "
        "backend, with where to get each value, and check that the webhook port is free and the database "
        "writable. Exits 1 when `serve` would refuse to start. No secret value is printed.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose or args.command == "serve")
    bind = "the webhook address"
    try:
        if args.command == "doctor":
            from .doctor import doctor

            return doctor()
        env = read_environment()
        if args.command == "serve":
            refused = _refusals(env)
            if refused:
                for problem in refused:
                    print(f"opendispatch: {problem.message}", file=sys.stderr)
                return 2
        config = Config.from_env(env, dotenv=None)
        bind = config.webhook_bind
        configure_logging(
            verbose=args.verbose or args.command == "serve", redactor=Redactor.of(config.secret_values)
        )
        if args.command in ("demo", "console"):
            from .demo import main as demo_main

            if getattr(args, "sprites", None):
                config = attrs.evolve(config, sprite_backend=args.sprites)
            interactive = True if args.command == "console" or args.interactive else (False if args.script else None)
            return demo_main(config, interactive=interactive, agent=getattr(args, "agent", None))
        from .bootstrap import serve
        from .gc_tuning import tune_garbage_collector

        tune_garbage_collector()  # a long-running server: see gc_tuning.py
        trio.run(partial(serve, config))
        return 0
    except ConfigError as exc:
        return _config_error(exc)
    except KeyboardInterrupt:
        return _interrupted()
    except OSError as exc:
        return _os_error(exc, bind)
    except BaseExceptionGroup as group:
        # Trio raises what its tasks raised inside exception groups: Ctrl-C and the errors we
        # can explain get their one line here too, never a traceback.
        leaves = _leaves(group)
        if all(isinstance(leaf, (KeyboardInterrupt, trio.Cancelled)) for leaf in leaves):
            return _interrupted()
        explained = next((leaf for leaf in leaves if isinstance(leaf, (ConfigError, OSError))), None)
        if isinstance(explained, ConfigError):
            return _config_error(explained)
        if isinstance(explained, OSError) and explained.errno in _EXPLAINED_ERRNOS:
            return _os_error(explained, bind)
        raise


_EXPLAINED_ERRNOS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _interrupted() -> int:
    """Ctrl-C: running jobs were cancelled and their sprites destroyed on the way out."""
    print("\nopendispatch: stopped (Ctrl-C).", file=sys.stderr)
    return 130


def _refusals(env: Mapping[str, str]) -> list[Problem]:
    """What `serve` refuses to start with, all of it: `doctor` lists the same problems."""
    problems = validate(env)
    config, _ = Config.read(env)
    unwritable = check_database(config.database_path)
    return [*problems, unwritable] if unwritable is not None else problems


def _config_error(exc: ConfigError) -> int:
    """A `ConfigError` holds one problem per line: each gets its own `opendispatch:` line."""
    for line in str(exc).splitlines():
        print(f"opendispatch: {line}", file=sys.stderr)
    return 2


def _os_error(exc: OSError, bind: str) -> int:
    problem = listen_problem(bind, exc)
    if problem is None:
        raise exc
    print(f"opendispatch: {problem.message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
