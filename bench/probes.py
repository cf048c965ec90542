"""The probes' own overhead: an LDAP bind measured alone, then by the exporter with many probes configured.

A real slapd on loopback (the tests' own set-up, tests/probe_servers.py). First, ldap3 alone in a loop:
connect and simple bind as the probe account, then unbind, one after the other (what the LDAP probe
does, nothing else running): its p50. Then the exporter's ProbeRunner with ``--probes`` LDAP probes of
that slapd (one connector each), started as ``serve`` starts it (each on its interval at its own offset,
plus jitter, at most 16 in flight) for ``--seconds``: the p50 of the durations it reports (what feeds
ent_connector_probe_duration_seconds) and of its phases. The overhead is the difference of the two
p50s; the issue's target is 5 ms or less.

    python -m bench.probes --output BENCHMARKS.md

writes its section of BENCHMARKS.md (bench.run keeps it when it rewrites the file).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import sections

SECTION = "## Probe overhead"
TARGET_MS = 5.0


@dataclass
class Result:
    probes: int
    interval: float
    seconds: float
    alone_ms: list[float]  # each bind measured alone
    exporter_ms: list[float]  # each probe's duration as the exporter reports it
    phases_ms: dict[str, list[float]] = field(default_factory=dict)
    failures: int = 0
    # What the exporter published of them: ent_connector_probe_duration_seconds' count and sum, all probes.
    published_count: float = 0.0
    published_sum_ms: float = 0.0
    started: str = ""
    ended: str = ""
    load_before: tuple[float, ...] = ()
    load_after: tuple[float, ...] = ()

    @property
    def alone_p50(self) -> float:
        return statistics.median(self.alone_ms)

    @property
    def exporter_p50(self) -> float:
        return statistics.median(self.exporter_ms)

    @property
    def overhead_ms(self) -> float:
        return self.exporter_p50 - self.alone_p50

    @property
    def met(self) -> bool:
        return self.overhead_ms <= TARGET_MS


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def bind_alone(url: str, dn: str, password: str, times: int) -> list[float]:
    """ms of each connect + bind + unbind with ldap3, as the probe makes them, one after the other."""
    import ldap3

    host, port = url.removeprefix("ldap://").split(":")
    spent = []
    for _ in range(times):
        started = time.monotonic()
        server = ldap3.Server(host, port=int(port), connect_timeout=5, get_info=ldap3.NONE)
        connection = ldap3.Connection(
            server, user=dn, password=password, auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False
        )
        connection.open()
        if not connection.bind():
            raise RuntimeError(f"the bind alone failed: {connection.result}")
        connection.unbind()
        spent.append((time.monotonic() - started) * 1000)
    return spent


def run(probes: int, seconds: float, interval: float, alone: int, workdir: Path) -> Result:
    from ent_exporter.config import parse_config
    from ent_exporter.engine.exposition import Exposition
    from ent_exporter.probes.base import ProbeFailure
    from ent_exporter.probes.runner import DURATION, ProbeRunner
    from tests.probe_servers import PROBE_DN, PROBE_PASSWORD, Slapd, make_certificates

    slapd = Slapd(workdir / "slapd", make_certificates(workdir / "certs")).start()
    try:
        url = f"ldap://127.0.0.1:{slapd.port}"
        bind_alone(url, PROBE_DN, PROBE_PASSWORD, 5)  # (warm: slapd's first binds, the imports)
        load_before = os.getloadavg()
        started = datetime.now(UTC)  # the report's date only, never a measure
        alone_ms = bind_alone(url, PROBE_DN, PROBE_PASSWORD, alone)
        entries = [
            {
                "connector": f"ldap-{index:03d}",
                "kind": "ldap",
                "url": url,
                "bind_dn": PROBE_DN,
                "password_env": "BENCH_LDAP_PASSWORD",
                "interval_seconds": interval,
                "timeout_seconds": min(5.0, interval),
            }
            for index in range(probes)
        ]
        config = parse_config(
            {"source": {"dsn": "x"}, "probes": entries}, "bench", environ={"BENCH_LDAP_PASSWORD": PROBE_PASSWORD}
        )
        exporter_ms: list[float] = []
        phases_ms: dict[str, list[float]] = {}
        failures = [0]
        lock = threading.Lock()

        class Recording(ProbeRunner):
            """The runner as the exporter runs it, keeping each duration it records (the histogram's input)."""

            def _record(self, index, outcome, seconds, phases=None):  # type: ignore[no-untyped-def]
                with lock:
                    if isinstance(outcome, ProbeFailure):
                        failures[0] += 1
                    else:
                        exporter_ms.append(seconds * 1000)
                        total = sum(v for k, v in (phases or {}).items() if k != "processing")
                        for phase, spent in (phases or {}).items():
                            phases_ms.setdefault(phase, []).append(spent * 1000)
                        phases_ms.setdefault("processing", []).append(max(0.0, seconds - total) * 1000)
                super()._record(index, outcome, seconds, phases)

        runner = Recording(config.probes, Exposition([]))
        runner.start()
        time.sleep(seconds)
        runner.stop()
        ended = datetime.now(UTC)
        published = runner.samples()[DURATION.name].values()
        return Result(
            probes,
            interval,
            seconds,
            alone_ms,
            exporter_ms,
            phases_ms,
            failures[0],
            sum(h.count for h in published),  # type: ignore[union-attr]
            sum(h.sum for h in published) * 1000,  # type: ignore[union-attr]
            started.strftime("%Y-%m-%d %H:%M UTC"),
            ended.strftime("%Y-%m-%d %H:%M UTC"),
            load_before,
            os.getloadavg(),
        )
    finally:
        slapd.stop()


def markdown(result: Result, command: str) -> str:
    def ms(value: float) -> str:
        return f"{value:.2f} ms"

    phases = " · ".join(
        f"{phase} {ms(statistics.median(values))}"
        for phase in ("resolve", "connect", "tls", "request", "processing")
        if (values := result.phases_ms.get(phase))
    )
    from bench.run import machine

    host = machine()
    return f"""{SECTION} ({result.started[:10]})

An LDAP bind to a real slapd on loopback, measured alone (ldap3: connect, simple bind, unbind, one after
the other) and as the exporter reports it with {result.probes} LDAP probes configured, each every
{result.interval:g} s at its own offset (the ProbeRunner `serve` and `probe` run, {result.seconds:g} s):

```sh
{command}
```

| | binds | p50 | p90 | p99 |
| --- | ---: | ---: | ---: | ---: |
| ldap3 alone | {len(result.alone_ms):,} | {ms(result.alone_p50)} | {ms(percentile(result.alone_ms, 0.9))} | {ms(percentile(result.alone_ms, 0.99))} |
| the exporter's probe duration | {len(result.exporter_ms):,} | {ms(result.exporter_p50)} | {ms(percentile(result.exporter_ms, 0.9))} | {ms(percentile(result.exporter_ms, 0.99))} |

Overhead at p50: **{ms(result.overhead_ms)}** (target ≤ {TARGET_MS:g} ms: {"met" if result.met else "**missed**"}); \
{result.failures} probe(s) failed. The exporter's phases at p50: {phases}.

{host["cpu"]}, {host["cores"]} cores, {host["memory"]}; {result.started} → {result.ended}; load average before \
{", ".join(f"{v:.2f}" for v in result.load_before)}, after {", ".join(f"{v:.2f}" for v in result.load_after)} \
(other work shares the cores: times are upper bounds); Python {sys.version.split()[0]}.
"""


def kept_section(path: Path) -> str:
    """This benchmark's section of an existing BENCHMARKS.md (bench.run rewrites the rest of the file)."""
    return sections.kept(path, SECTION)


def write_section(path: Path, body: str) -> None:
    """Replaces (or adds) this benchmark's section of BENCHMARKS.md."""
    sections.write(path, SECTION, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=50, help="LDAP probes configured (default 50)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the exporter's probes run (default 60)")
    parser.add_argument("--interval", type=float, default=5, help="each probe's interval_seconds (default 5)")
    parser.add_argument("--alone", type=int, default=500, help="binds measured alone (default 500)")
    parser.add_argument("--output", type=Path, help="write the section into this BENCHMARKS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        result = run(args.probes, args.seconds, args.interval, args.alone, Path(workdir))
    command = "python -m bench.probes" + "".join(
        f" --{name} {value:g}" if isinstance(value, float) else f" --{name} {value}"
        for name, value, default in (
            ("probes", args.probes, 50),
            ("seconds", args.seconds, 60),
            ("interval", args.interval, 5),
            ("alone", args.alone, 500),
        )
        if value != default
    )
    body = markdown(result, command + " --output BENCHMARKS.md")
    print(body)
    if args.output:
        write_section(args.output, body)
    return 0 if result.met else 1


if __name__ == "__main__":
    sys.exit(main())
