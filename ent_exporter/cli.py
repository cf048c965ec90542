"""The ``ent-exporter`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from ent_exporter import __version__
from ent_exporter.config import Config, ConfigError, dsn_problem, load_config
from ent_exporter.engine import clock as clocks
from ent_exporter.sources.postgres import SourceUnavailable

log = logging.getLogger("ent-exporter")


def _parse_now(text: str, config: Config) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--now: not an ISO 8601 date and time: {text!r}") from None
    # A time without an offset is read in the platform's timezone, like every period.
    return moment if moment.tzinfo else moment.replace(tzinfo=config.zone)


def cmd_check_config(args: argparse.Namespace) -> int:
    from ent_exporter.app import check_reports_dir, check_state_dir, enabled_collectors, listen_in_use

    config = load_config(args.config)
    names = [collector.name for collector in enabled_collectors(config, str(args.config))]
    problem = dsn_problem(config.source.dsn or "")
    if problem:
        raise ConfigError(
            f"{args.config}: invalid configuration\n  source.dsn: not a valid connection string ({problem})"
        )
    web = _web_config(args)
    check_state_dir(config.state_dir, str(args.config))
    check_reports_dir(config, str(args.config))
    in_use = listen_in_use(config.listen.address, config.listen.port)
    if in_use:  # not an error: the exporter being checked may be the one listening
        print(f"{args.config}: note: {in_use}", file=sys.stderr)
    if args.connect:
        from ent_exporter.sources.preflight import check_source

        findings = check_source(config)
        for finding in findings:
            print(f"{args.config}: {'' if finding.problem else 'note: '}{finding.text}", file=sys.stderr)
        problems = sum(finding.problem for finding in findings)
        if problems:
            print(
                f"ent-exporter: {args.config}: the source is not ready for the exporter "
                f"({problems} problem{'s' if problems > 1 else ''})",
                file=sys.stderr,
            )
            return 1
    reached = f", source {config.source.schema_name} checked" if args.connect else ""
    print(f"{args.config}: configuration is valid ({len(names)} collectors: {', '.join(names)}{reached})")
    if web is not None:
        print(
            f"{args.web_config_file}: web configuration is valid"
            f" (TLS {'on' if web.ssl_context else 'off'}, basic auth {'on' if web.users else 'off'})"
        )
    return 0


def _web_config(args: argparse.Namespace):
    """The --web.config.file, loaded and checked (None when not given)."""
    from ent_exporter.web.config import load_web_config

    path = getattr(args, "web_config_file", None)
    return load_web_config(path) if path else None


def cmd_once(args: argparse.Namespace) -> int:
    from ent_exporter.app import make_runtime, make_source
    from ent_exporter.sources.preflight import connection_problem, reserved_structure_code

    config = load_config(args.config)
    now = _parse_now(args.now, config) if args.now else clocks.default().now()
    source = make_source(config)
    runtime = make_runtime(config, source, persistent=False, origin=str(args.config))
    problem = connection_problem(config)  # a wrong password or a dead host is said at once, not retried
    if problem:
        print(f"ent-exporter: {args.config}: {problem}", file=sys.stderr)
        return 1
    reserved = reserved_structure_code(config)  # its figures would merge into the platform's: refused
    if reserved:
        print(f"ent-exporter: {args.config}: {reserved}", file=sys.stderr)
        return 2
    try:
        source.wait_ready()
        succeeded = runtime.run_all(now.astimezone(UTC))
    except SourceUnavailable as error:
        print(f"ent-exporter: cannot reach the database of {args.config}: {error}", file=sys.stderr)
        return 1
    finally:
        source.close()
    sys.stdout.buffer.write(runtime.exposition.body())
    sys.stdout.flush()
    if not succeeded:
        print(
            "ent-exporter: some collectors failed (see above and ent_exporter_collector_failures_total)",
            file=sys.stderr,
        )
    return 0 if succeeded else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from ent_exporter.app import Exporter

    config = load_config(args.config)
    return _serve_until_terminated(
        Exporter(config, str(args.config), _web_config(args), web_config_file=args.web_config_file)
    )


def _serve_until_terminated(exporter) -> int:
    """Starts ``exporter`` (Exporter or ProbeExporter), reloads it on SIGHUP and stops it on SIGTERM/SIGINT."""
    from ent_exporter.app import wait_for_termination

    exporter.start()
    try:
        wait_for_termination(on_hangup=exporter.reload)
    finally:
        exporter.stop()
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """The probes alone (a probe exporter's file: listen, state_dir, probes), beside the statistics exporter."""
    from ent_exporter.app import ProbeExporter

    config = load_config(args.config, probes_only=True)
    web = _web_config(args)
    if args.check:  # as check-config does for the statistics exporter's file: nothing started
        from ent_exporter.app import check_writable_dir, listen_in_use

        check_writable_dir(config.state_dir, "state_dir", str(args.config))
        in_use = listen_in_use(config.listen.address, config.listen.port)
        if in_use:
            print(f"{args.config}: note: {in_use}", file=sys.stderr)
        kinds = ", ".join(f"{probe.connector}/{probe.kind}" for probe in config.probes)
        print(f"{args.config}: probe configuration is valid ({len(config.probes)} probes: {kinds})")
        return 0
    return _serve_until_terminated(ProbeExporter(config, str(args.config), web, web_config_file=args.web_config_file))


def cmd_demo(args: argparse.Namespace) -> int:
    from ent_exporter.extras import require

    require("demo")
    from ent_exporter.demo import run_demo

    return run_demo(
        state_dir=args.state_dir,
        port=args.port,
        scale=args.scale,
        days=args.days,
        address=args.address,
        start=_parse_demo_now(args.now) if args.now else None,
        web=_web_config(args),
    )


def _parse_demo_now(text: str) -> datetime:
    from zoneinfo import ZoneInfo

    from ent_exporter.demo import DEMO_TIMEZONE

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--now: not an ISO 8601 date and time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(DEMO_TIMEZONE))


def cmd_init_source(args: argparse.Namespace) -> int:
    from ent_exporter.sources.adapters import AdapterError, SourceOptions
    from ent_exporter.sources.adapters.commands import admin_dsn, password_from, run_init_source

    try:
        options = SourceOptions(
            args.platform,
            schema=args.schema,
            role=args.role,
            password=password_from(args.password_env),
            indexes=args.indexes,
            prefix=args.prefix,
            moodle_schema=args.moodle_schema,
            events_schema=args.events_schema,
            directory_schema=args.directory_schema,
            event_timezone=args.event_timezone,
            platform_id=args.platform_id,
            skip_anonymous=args.skip_anonymous,
            active_enrolments_only=args.active_enrolments_only,
        )
        return run_init_source(options, admin_dsn(args.dsn), args.print)
    except AdapterError as error:
        print(f"ent-exporter: init-source: {error}", file=sys.stderr)
        return 2
    except psycopg.Error as error:
        print(f"ent-exporter: init-source: the database refused: {str(error).strip()}", file=sys.stderr)
        return 1


def cmd_import_directory(args: argparse.Namespace) -> int:
    from ent_exporter.sources.adapters import AdapterError
    from ent_exporter.sources.adapters.commands import admin_dsn, run_import_directory

    try:
        return run_import_directory(args.file, admin_dsn(args.dsn), args.directory_schema)
    except AdapterError as error:
        print(f"ent-exporter: import-directory: {error}", file=sys.stderr)
        return 2
    except psycopg.Error as error:
        print(f"ent-exporter: import-directory: the database refused: {str(error).strip()}", file=sys.stderr)
        return 1


def cmd_report(args: argparse.Namespace) -> int:
    """Monthly reports (reports/): one line and exit 2 for a bad month (malformed, not begun, not over without
    --partial, before the source's data), format or structure, or an output that cannot be written (then
    nothing new is left)."""
    from ent_exporter.extras import require

    require("reports")
    from ent_exporter.app import report_source
    from ent_exporter.reports import ReportError, write_reports
    from ent_exporter.reports.figures import Month
    from ent_exporter.reports.settings import FORMATS
    from ent_exporter.sources.preflight import connection_problem

    config = load_config(args.config)
    try:
        month = Month.parse(args.month, config.zone)
    except ValueError as error:
        raise ConfigError(f"--month: {error}") from None
    settings = config.reports
    formats = (
        [f.strip() for f in args.format.split(",")]
        if args.format
        else (settings.formats if settings else list(FORMATS))
    )
    wrong = [f for f in formats if f not in FORMATS]
    if wrong or not formats:
        raise ConfigError(f"--format: unknown format {', '.join(wrong) or '(none)'} (known: {', '.join(FORMATS)})")
    language = args.lang or (settings.language if settings else "fr")
    out = args.out or (settings.directory if settings else Path("reports"))
    problem = connection_problem(config)
    if problem:
        print(f"ent-exporter: {args.config}: {problem}", file=sys.stderr)
        return 1
    source = report_source(config)
    try:
        source.wait_ready()
        written = write_reports(
            source,
            month,
            Path(out),
            structures=args.structure,
            formats=tuple(formats),
            language=language,
            min_count=config.privacy.min_count,
            app_names=settings.app_names() if settings else None,
            partial=args.partial,
        )
    except ReportError as error:
        print(f"ent-exporter: report: {error}", file=sys.stderr)
        return 2
    except SourceUnavailable as error:
        print(f"ent-exporter: cannot reach the database of {args.config}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"ent-exporter: report: --out: cannot write {error.filename or out} ({error.strerror or error})",
            file=sys.stderr,
        )
        return 2
    finally:
        source.close()
    print(f"{len(written)} files written in {out} ({month}, {language})")
    return 0


WEB_CONFIG_HELP = (
    "TLS and basic auth of /metrics, in the exporter-toolkit web configuration format"
    " (tls_server_config, basic_auth_users)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ent-exporter",
        description="Prometheus exporter for the usage statistics of school digital workspaces (ENT).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="embedded PostgreSQL + synthetic ENT + live events, serves /metrics")
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the demo keeps its database and state"
        " (default: $XDG_STATE_HOME/ent-exporter/demo, i.e. ~/.local/state/ent-exporter/demo)",
    )
    demo.add_argument("--port", type=int, default=9877)
    demo.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for every interface)",
    )
    demo.add_argument(
        "--now",
        metavar="ISO8601",
        help="run the demo's clock from this instant (history, live events and collectors; it then "
        "advances normally; no offset = Europe/Paris): to see the dashboards at a given hour",
    )
    demo.add_argument("--scale", type=float, default=1.0, help="multiplies structures and accounts (default 1)")
    demo.add_argument("--days", type=int, default=60, help="days of history to generate (default 60)")
    demo.add_argument("--web.config.file", dest="web_config_file", type=Path, metavar="WEB", help=WEB_CONFIG_HELP)
    demo.set_defaults(handler=cmd_demo)

    for name, handler, text in (
        ("serve", cmd_serve, "the production daemon"),
        ("probe", cmd_probe, "the connector probes alone: a file with listen, state_dir and probes only, no database"),
        ("once", cmd_once, "run every collector once and print the exposition"),
        ("check-config", cmd_check_config, "validate a configuration file"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", required=True, type=Path, metavar="FILE")
        if name == "probe":
            sub.add_argument(
                "--check", action="store_true", help="only validate the file (and the state directory), then exit"
            )
        if name == "check-config":
            sub.add_argument(
                "--connect",
                action="store_true",
                help="also connect: the database, the schema, the contract's relations, their columns "
                "and the role's rights, one line per problem (exit 1 if any)",
            )
        if name in ("serve", "probe", "check-config"):
            sub.add_argument(
                "--web.config.file", dest="web_config_file", type=Path, metavar="WEB", help=WEB_CONFIG_HELP
            )
        if name == "once":
            sub.add_argument(
                "--now",
                metavar="ISO8601",
                help="compute as of this instant (default: now; no offset = platform timezone)",
            )
        sub.set_defaults(handler=handler)

    report = commands.add_parser(
        "report", help="monthly reports per establishment and for the platform (PDF, HTML, CSV; French by default)"
    )
    report.add_argument("--config", required=True, type=Path, metavar="FILE")
    report.add_argument(
        "--month", required=True, metavar="YYYY-MM", help="the calendar month, in the configured timezone"
    )
    report.add_argument(
        "--structure",
        nargs="+",
        action="extend",
        metavar="ID",
        help="only these structures (their code; 'all' is the platform report; default: every "
        "structure and the platform)",
    )
    report.add_argument(
        "--format",
        metavar="pdf,html,csv",
        help="comma-separated (default: reports.formats of the config, else all three)",
    )
    report.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output directory (default: reports.directory of the config, else ./reports)",
    )
    report.add_argument("--lang", choices=["fr", "en"], help="default: reports.language of the config, else fr")
    report.add_argument(
        "--partial",
        action="store_true",
        help="the current, unfinished month: a provisional report as of now (without it, refused)",
    )
    report.set_defaults(handler=cmd_report)

    dsn_help = (
        "a role that can read the platform's tables and create a schema and a role (default: $ENT_EXPORTER_ADMIN_DSN)"
    )
    init = commands.add_parser(
        "init-source", help="create the contract's views over a platform's tables, the indexes and a read-only role"
    )
    init.add_argument("--platform", required=True, choices=["edifice", "moodle", "canonical"])
    init.add_argument("--dsn", help=dsn_help)
    init.add_argument("--print", action="store_true", help="print the SQL for review instead of running it")
    init.add_argument("--schema", default="ent", help="schema of the contract's views (default: ent)")
    init.add_argument("--role", default="ent_exporter", help="the exporter's read-only role (default: ent_exporter)")
    init.add_argument(
        "--password-env",
        metavar="VARIABLE",
        help="let the role log in with the password in this environment variable (default: NOLOGIN)",
    )
    init.add_argument(
        "--no-indexes",
        dest="indexes",
        action="store_false",
        help="do not build indexes on the platform's tables (--print shows them)",
    )
    init.add_argument("--prefix", default="mdl_", help="Moodle: table prefix (default: mdl_)")
    init.add_argument("--moodle-schema", default="public", help="Moodle: schema of its tables (default: public)")
    init.add_argument(
        "--skip-anonymous",
        action="store_true",
        help="Moodle: leave out log rows marked anonymous (anonymous feedback, ...)",
    )
    init.add_argument(
        "--active-enrolments-only",
        action="store_true",
        help="Moodle: a role assignment in a course attaches a user only with an active enrolment there",
    )
    init.add_argument("--events-schema", default="events", help="Edifice: schema of the event store (default: events)")
    init.add_argument(
        "--directory-schema",
        default="ent_directory",
        help="Edifice: schema of the imported directory (default: ent_directory)",
    )
    init.add_argument(
        "--event-timezone",
        default="Europe/Paris",
        help="Edifice: timezone of the event store's dates (default: Europe/Paris)",
    )
    init.add_argument("--platform-id", help="Edifice: count only the events of this platform_id")
    init.set_defaults(handler=cmd_init_source)

    directory = commands.add_parser(
        "import-directory", help="load the Edifice directory (CSV exported from Neo4j) into the tables the views join"
    )
    directory.add_argument("file", metavar="FILE.csv", help="the export (- for standard input)")
    directory.add_argument("--dsn", help="the role that ran init-source (default: $ENT_EXPORTER_ADMIN_DSN)")
    directory.add_argument(
        "--directory-schema", default="ent_directory", help="schema of the imported directory (default: ent_directory)"
    )
    directory.set_defaults(handler=cmd_import_directory)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    from ent_exporter.app import StartupError
    from ent_exporter.extras import MissingExtra

    try:
        return args.handler(args)
    except (ConfigError, StartupError, MissingExtra) as error:
        print(f"ent-exporter: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
