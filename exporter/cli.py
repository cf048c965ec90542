"""The ``ent-exporter`` command line."""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .config import Config, ConfigError, load_config
from .source import SourceUnavailable

log = logging.getLogger("ent-exporter")


def _parse_now(text: str, config: Config) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--now: not an ISO 8601 date and time: {text!r}") from None
    # A time without an offset is read in the platform's timezone, like every period.
    return moment if moment.tzinfo else moment.replace(tzinfo=config.zone)


def cmd_check_config(args: argparse.Namespace) -> int:
    from .app import enabled_collectors

    config = load_config(args.config)
    names = [collector.name for collector in enabled_collectors(config, str(args.config))]
    print(f"{args.config}: configuration is valid ({len(names)} collectors: {', '.join(names)})")
    return 0


def cmd_once(args: argparse.Namespace) -> int:
    from .app import make_runtime, make_source

    config = load_config(args.config)
    now = _parse_now(args.now, config) if args.now else datetime.now(timezone.utc)
    source = make_source(config)
    runtime = make_runtime(config, source, persistent=False, origin=str(args.config))
    try:
        source.wait_ready()
        succeeded = runtime.run_all(now.astimezone(timezone.utc))
    except SourceUnavailable as error:
        print(f"ent-exporter: cannot reach the database of {args.config}: {error}", file=sys.stderr)
        return 1
    finally:
        source.close()
    sys.stdout.buffer.write(runtime.exposition.body())
    sys.stdout.flush()
    if not succeeded:
        print("ent-exporter: some collectors failed (see above and ent_exporter_collector_failures_total)", file=sys.stderr)
    return 0 if succeeded else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import Exporter, wait_for_termination

    config = load_config(args.config)
    exporter = Exporter(config, str(args.config))
    exporter.start()
    try:
        wait_for_termination()
    finally:
        exporter.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(state_dir=args.state_dir, port=args.port, scale=args.scale, days=args.days, address=args.address)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ent-exporter",
        description="Prometheus exporter for the usage statistics of school digital workspaces (ENT).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="embedded PostgreSQL + synthetic ENT + live events, serves /metrics")
    demo.add_argument("--state-dir", type=Path, default=Path("ent-exporter-demo"),
                      help="where the demo keeps its database and state (default: ./ent-exporter-demo)")
    demo.add_argument("--port", type=int, default=9877)
    demo.add_argument("--address", default="0.0.0.0", help="address to listen on (default: all interfaces)")
    demo.add_argument("--scale", type=float, default=1.0, help="multiplies structures and accounts (default 1)")
    demo.add_argument("--days", type=int, default=60, help="days of history to generate (default 60)")
    demo.set_defaults(handler=cmd_demo)

    for name, handler, text in (
        ("serve", cmd_serve, "the production daemon"),
        ("once", cmd_once, "run every collector once and print the exposition"),
        ("check-config", cmd_check_config, "validate a configuration file"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", required=True, type=Path, metavar="FILE")
        if name == "once":
            sub.add_argument("--now", metavar="ISO8601",
                             help="compute as of this instant (default: now; no offset = platform timezone)")
        sub.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"ent-exporter: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
