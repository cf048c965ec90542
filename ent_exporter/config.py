"""Configuration: a YAML file validated by pydantic, with errors that name the key and the file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ent_exporter import probes
from ent_exporter.engine.collector import Cadence
from ent_exporter.engine.schedule import Schedule
from ent_exporter.indicators import custom as custom_indicators
from ent_exporter.reports.settings import ReportsConfig

DSN_ENVIRONMENT_VARIABLE = "ENT_EXPORTER_DSN"


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SourceConfig(_Section):
    dsn: str | None = Field(None, description="libpq connection string or URI; ENT_EXPORTER_DSN overrides it")
    schema_name: str = Field("ent", alias="schema", description="schema holding the contract's views")
    statement_timeout_seconds: float = Field(60, gt=0, description="bound of every statement, set on the session")
    connect_timeout_seconds: float = Field(
        10, gt=0, description="bound of connecting and of the pool's check of a connection"
    )
    max_connections: int = Field(
        2, ge=1, le=32, description="size of the pool: collectors run one statement at a time, so it stays small"
    )
    settle_seconds: float = Field(5, ge=0, description="events younger than this wait for the next cycle")
    chunk_size: int = Field(500_000, ge=1, description="event ids read per statement by incremental counters")
    late_commit_limit_seconds: float = Field(
        3600, gt=0, description="events whose transaction commits later than this are not counted (reported)"
    )


class ListenConfig(_Section):
    address: str = Field(
        default="0.0.0.0", description="address to listen on; bind the scraping interface where you can"
    )
    port: int = Field(9877, ge=1, le=65535, description="TCP port of /metrics, /healthz and /readyz")
    read_timeout_seconds: float = Field(
        10,
        gt=0,
        description="a request head (TLS handshake included) must arrive whole within this, from the"
        " connection or the previous answer; else the connection is closed",
    )
    max_connections: int = Field(
        4096,
        ge=1,
        description="open connections at once (at most the open-file limit allows); beyond, the oldest"
        " one waiting for a request is closed",
    )
    max_unauthenticated_per_peer: int = Field(
        32,
        ge=1,
        description="connections one address may hold without valid credentials (with no users: before"
        " a first answer); beyond, its new ones are closed",
    )


class ScheduleConfig(_Section):
    cron: str | None = Field(None, description="crontab expression; the cadence's default when absent")
    jitter_seconds: int | None = Field(
        None, ge=0, description="random delay added to each run, at most this; the cadence's default when absent"
    )

    @field_validator("cron")
    @classmethod
    def _valid_crontab(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value)
            except ValueError as error:
                raise ValueError(f"not a crontab expression ({error})") from None
        return value


class RetryConfig(_Section):
    initial_seconds: float = Field(5, gt=0, description="wait after a first failed run; it doubles after each failure")
    max_seconds: float = Field(300, gt=0, description="longest wait between retries (and never beyond the cadence)")


class CollectorsConfig(_Section):
    disabled: list[str] = Field(default_factory=list, description="names of collectors not to run")
    enabled: list[str] = Field(default_factory=list, description="opt-in collectors to run (e.g. per course)")


class LimitsConfig(_Section):
    max_series_per_family: int = Field(
        200_000, ge=1, description='beyond this the rarest label values are folded into "other"'
    )

    idle_series_days: float = Field(
        90, gt=0, description="a counter series that has not moved for this long stops being exported"
    )


class BreakdownsConfig(_Section):
    """Heavy per-structure breakdowns, off by default (series budget: docs/metrics.md, "Series budget")."""

    logins_by_hour_per_structure: bool = Field(
        False,
        description="ent_logins_by_hour: the 168 weekday x hour cells for every structure"
        ' (default: structure="all" whole, other structures by hour and by weekday)',
    )
    app_accesses_by_profile_per_structure: bool = Field(
        False,
        description="ent_app_accesses_total: every profile for every structure"
        ' (default: structure="all" per profile, other structures profile="all")',
    )

    user_logins_30d_by_profile_per_structure: bool = Field(
        False,
        description="ent_user_logins_30d: the distribution of every profile for every structure"
        ' (default: structure="all" per profile, other structures profile="all")',
    )
    visits_per_visitor_by_profile_per_structure: bool = Field(
        False,
        description="ent_visits_per_visitor: the ratio of every profile for every structure"
        ' (default: structure="all" per profile, other structures profile="all")',
    )

    def enabled(self) -> frozenset[str]:
        return frozenset(name for name, on in self.model_dump().items() if on)


class PrivacyConfig(_Section):
    min_count: int = Field(
        0, ge=0, description="people counts below this, and those a difference would give back, withheld (0 = off)"
    )


# One entry of `probes:`: the kind's settings model, chosen by its `kind` key (a union built from the
# registered kinds, which the type checker cannot follow: to it, any kind's settings).
if TYPE_CHECKING:
    ProbeConfig = probes.ProbeSettings
else:
    ProbeConfig = Annotated[
        Union[tuple(kind.Settings for _, kind in sorted(probes.kinds().items()))],  # noqa: UP007
        Field(discriminator="kind"),
    ]


class Config(_Section):
    source: SourceConfig = Field(
        default_factory=SourceConfig, description="the platform's database, read through the source contract"
    )
    listen: ListenConfig = Field(default_factory=ListenConfig, description="the HTTP endpoint Prometheus scrapes")
    timezone: str = Field(default="Europe/Paris", description="the platform's calendar: periods, days and hours of day")
    state_dir: Path = Field(
        default=Path("state"),
        description="where results, counters and watermarks persist; relative paths are relative to the file;"
        " one process at a time (a second serve or probe on it is refused at start)",
    )
    schedules: dict[Cadence, ScheduleConfig] = Field(
        default_factory=dict, description="crontab and jitter per cadence, in the configured timezone"
    )
    retry: RetryConfig = Field(default_factory=RetryConfig, description="the exponential backoff after a failed run")
    collectors: CollectorsConfig = Field(default_factory=CollectorsConfig, description="which collectors run, by name")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="the cardinality guard and the idle series")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="small people counts published as 0")
    breakdowns: BreakdownsConfig = Field(
        default_factory=BreakdownsConfig, description="heavy per-structure breakdowns, off by default"
    )
    probes: list[ProbeConfig] = Field(default_factory=list, description="active probes of the connectors")
    custom: list[custom_indicators.Settings] = Field(default_factory=list, description="indicators declared in SQL")
    # Monthly reports written by the daemon (reports/): absent = none.
    reports: ReportsConfig | None = Field(
        default=None, description="optional: the daemon writes the monthly reports; absent, it writes none"
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Europe/Paris)") from None
        return value

    @field_validator("probes")
    @classmethod
    def _probes_distinct(cls, value: list) -> list:
        seen: dict[tuple[str, str], int] = {}
        for index, probe in enumerate(value):
            key = (probe.connector, probe.kind)
            if key in seen:
                raise ValueError(
                    f"probes.{index} is a second {probe.kind} probe of connector {probe.connector} "
                    f"(after probes.{seen[key]}): their series would be one; give each its own "
                    "connector value"
                )
            seen[key] = index
        return value

    @field_validator("custom")
    @classmethod
    def _custom_distinct(cls, value: list) -> list:
        seen: dict[str, int] = {}
        for index, entry in enumerate(value):
            if entry.metric in seen:
                raise ValueError(
                    f"custom.{index}.metric: {entry.metric} is already declared by custom.{seen[entry.metric]}"
                )
            seen[entry.metric] = index
        return value

    @model_validator(mode="after")
    def _dsn_given(self) -> Config:
        if not self.source.dsn:
            raise ValueError(f"source.dsn is required (or set {DSN_ENVIRONMENT_VARIABLE})")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def schedule(self, cadence: Cadence) -> Schedule:
        """The cadence's schedule in force: its crontab expression and jitter, defaults filled in."""
        configured = self.schedules.get(cadence, ScheduleConfig())
        return Schedule(
            cadence,
            configured.cron or cadence.default_schedule,
            cadence.default_jitter_seconds if configured.jitter_seconds is None else configured.jitter_seconds,
            self.zone,
        )


def _describe(error: Mapping[str, Any]) -> str:
    loc = list(error["loc"])
    if len(loc) > 2 and loc[0] == "probes" and loc[2] in probes.kinds():
        del loc[2]  # the discriminated union's tag: probes.0.ldap.url is probes.0.url
    key = ".".join(str(part) for part in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if loc and loc[0] == "custom":
        # A custom entry's checks that span several keys say which one: custom.0: sql: ... -> custom.0.sql: ...
        field, _, rest = message.partition(": ")
        if rest and field in custom_indicators.Settings.model_fields:
            loc.append(field)
            message = rest
        elif field.startswith("custom.") and rest:
            loc, message = field.split("."), rest
        key = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "union_tag_invalid":
        key += ".kind"
        message = f"unknown probe kind {error['ctx']['tag']!r} (known: {', '.join(sorted(probes.kinds()))})"
    elif error["type"] == "union_tag_not_found":
        message = f"kind is required (one of {', '.join(sorted(probes.kinds()))})"
    return f"{key}: {message}"


# The keys of a probe exporter's file (``ent-exporter probe``): no database, only its probes, its port and its state.
PROBE_KEYS = ("listen", "state_dir", "probes")


def _probes_only(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """A probe exporter's file, checked for keys it does not read; a source it never opens filled in."""
    for key in data:
        if key not in PROBE_KEYS:
            raise ConfigError(
                f"{origin}: invalid configuration\n  {key}: not read by ent-exporter probe (its file has only "
                f"{', '.join(PROBE_KEYS)})"
            )
    if not data.get("probes"):
        raise ConfigError(f"{origin}: invalid configuration\n  probes: ent-exporter probe needs at least one probe")
    return {**data, "source": {"dsn": "(not used by ent-exporter probe)"}}


def parse_config(
    data: Any, origin: str, environ: Mapping[str, str] | None = None, *, probes_only: bool = False
) -> Config:
    """Validates already-parsed YAML; ``origin`` names the file in error messages. ``probes_only``: a probe
    exporter's file (PROBE_KEYS only, no source)."""
    environ = os.environ if environ is None else environ
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the configuration must be a mapping of keys, not {type(data).__name__}")
    if probes_only:
        data = _probes_only(data, origin)
    elif environ.get(DSN_ENVIRONMENT_VARIABLE):
        source = data.get("source") or {}
        if isinstance(source, dict):
            data = {**data, "source": {**source, "dsn": environ[DSN_ENVIRONMENT_VARIABLE]}}
    try:
        return Config.model_validate(data, context={"environ": environ})
    except ValidationError as error:
        lines = "\n".join(f"  {_describe(e)}" for e in error.errors())
        raise ConfigError(f"{origin}: invalid configuration\n{lines}") from None


class _UniqueKeys(yaml.SafeLoader):
    """yaml.safe_load's loader, except that a key given twice in one mapping is an error (not the
    last value silently kept)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # (<<: the keys a merged mapping gives may be overridden, as YAML says)
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the SafeLoader says so itself
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key} (first given at line {first + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML as yaml.safe_load reads it, with duplicate keys refused (at any depth): yaml.YAMLError,
    whose problem_mark is where the second one is (callers name the file)."""
    return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader)


def load_config(
    path: str | os.PathLike[str], environ: dict[str, str] | None = None, *, probes_only: bool = False
) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration ({error.strerror})") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    config = parse_config(data, str(path), environ, probes_only=probes_only)
    if not config.state_dir.is_absolute():
        # Relative state directories are relative to the config file, not the working directory.
        config.state_dir = (path.parent / config.state_dir).resolve()
    if config.reports is not None and not config.reports.directory.is_absolute():
        config.reports.directory = (path.parent / config.reports.directory).resolve()
    return config


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with a libpq connection string or URI (None if libpq can parse it)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except Exception as error:  # psycopg.ProgrammingError: libpq's own message
        text = str(error).strip()
        return text.splitlines()[0] if text else type(error).__name__
    return None
