"""The listener under attack, on loopback: do authenticated scrapes get through?

Run as ``python -m bench.listener`` (about 50 s). Three processes: the server (ent-exporter's
MetricsServer with basic auth, a cached user, a 2,000-sample exposition), the attacker (asyncio,
up to 1,000 sockets) and this one, which scrapes from 127.0.0.2 (a new connection per scrape,
basic auth) and samples the server's threads and RSS. Phases:

- ``idle``: scrapes alone (the reference p99);
- ``wrong-passwords``: 600 requests with a wrong password (16 at a time) in every other window of
  1.5 s; the scrapes of the quiet windows between them are the idle reference of this phase, taken
  under the same background load (on a shared machine, two phases apart differ more than that);
- ``slowloris-one-address``: 1,000 connections from 127.0.0.1 that each send a header byte every
  5 s, reconnecting 0.5 s after being closed;
- ``slowloris-many-addresses``: the same from 40 addresses (127.0.1.x, 25 each: under the per-peer
  cap), against a global cap below 1,000, so the global cap binds;
- ``reconnecting``: 200 loops that connect, send half a request head, close and start again.

Targets (issue 23): under every attack >= 99 % of scrapes succeed with p99 <= 1 s; under wrong
passwords, p99 < 2x the quiet windows' p99 (counted as at least 5 ms); threads and RSS bounded.
Its section of BENCHMARKS.md (SECTION) is written by hand from what this prints; bench.run keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.scrape import percentile

PASSWORD = "bench-scraper"
SCRAPER_ADDRESS = "127.0.0.2"
IDLE_P99_FLOOR_SECONDS = 0.005
WINDOW_SECONDS = 1.5

SECTION = "## The listener under attack"  # of BENCHMARKS.md, kept by bench.run


def raise_open_file_limit(wanted: int = 8192) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- the server ---------------------------------------------------------------------------------


def serve(port: int, web_file: str, max_connections: int, read_timeout: float) -> None:
    from ent_exporter.engine.collector import Family, Kind
    from ent_exporter.engine.exposition import Exposition
    from ent_exporter.web.config import load_web_config
    from ent_exporter.web.server import MetricsServer

    family = Family("bench_x_total", Kind.COUNTER, "x", ("structure",))
    exposition = Exposition([family])
    exposition.publish({"bench": {family.name: {(f"S{i:05d}",): float(i) for i in range(2000)}}})
    server = MetricsServer(
        "127.0.0.1",
        port,
        exposition,
        lambda: {"status": "ok"},
        web=load_web_config(web_file),
        read_timeout=read_timeout,
        max_connections=max_connections,
    )
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop()


def process_figures(pid: int) -> tuple[int, float]:
    """(threads, RSS in MB) of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


# -- the attacker --------------------------------------------------------------------------------


async def _slowloris(port: int, source: str, until: float, stats: dict) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["connections"] += 1
        stats["open"] += 1
        opened = loop.time()
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while loop.time() < until:
                try:
                    if await asyncio.wait_for(reader.read(100), timeout=5) == b"":
                        break
                except TimeoutError:
                    writer.write(b"a")  # one byte every 5 s: the head never ends
        except OSError:
            pass
        finally:
            stats["open"] -= 1
            lasted = loop.time() - opened
            stats["closed_at_once" if lasted < 0.5 else "closed_later"] += 1
            writer.transport.abort()
        await asyncio.sleep(0.5)


async def _reconnecting(port: int, until: float, stats: dict) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.05)
            continue
        stats["connections"] += 1
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.05)
        writer.transport.abort()


def in_attack_window(start: float, now: float) -> bool:
    """Wrong passwords come in every other window of WINDOW_SECONDS from ``start`` (time.monotonic(),
    the same clock in every process): scrapes in the quiet windows are the idle reference, taken
    under the same background load as the others."""
    return int((now - start) / WINDOW_SECONDS) % 2 == 1


async def _wrong_passwords(port: int, total: int, concurrency: int, seconds: float, start: float, stats: dict) -> None:
    """``total`` requests with a wrong password spread evenly over the attack windows of ``seconds``
    from ``start``, ``concurrency`` at a time."""
    request = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization('scraper', 'wrong')}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    windows = max(1, int(seconds / WINDOW_SECONDS) // 2)
    offset = loop.time() - time.monotonic()  # (the loop's clock is the monotonic one; kept exact anyway)

    def when(index: int) -> float:
        into = index * windows * WINDOW_SECONDS / total  # into the attack time
        window = int(into / WINDOW_SECONDS)
        return start + offset + (2 * window + 1) * WINDOW_SECONDS + (into - window * WINDOW_SECONDS)

    async def worker() -> None:
        reader = writer = None
        while stats["requests"] < total:
            stats["requests"] += 1
            await asyncio.sleep(max(0.0, when(stats["requests"] - 1) - loop.time()))
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.5", 0))
                assert reader is not None
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                stats[f"status_{status}"] = stats.get(f"status_{status}", 0) + 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                stats["errors"] += 1
                if writer is not None:
                    writer.transport.abort()
                reader = writer = None
        if writer is not None:
            writer.transport.abort()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def attack(port: int, mode: str, seconds: float, count: int, start: float) -> None:
    raise_open_file_limit()
    stats = {"connections": 0, "open": 0, "max_open": 0, "closed_at_once": 0, "closed_later": 0}
    stats.update(connect_errors=0, requests=0, errors=0)

    async def main() -> None:
        until = asyncio.get_running_loop().time() + seconds
        if mode == "slowloris-one-address":
            tasks = [_slowloris(port, "127.0.0.1", until, stats) for _ in range(count)]
        elif mode == "slowloris-many-addresses":
            tasks = [_slowloris(port, f"127.0.1.{1 + i % 40}", until, stats) for i in range(count)]
        elif mode == "reconnecting":
            tasks = [_reconnecting(port, until, stats) for _ in range(count)]
        else:
            tasks = [_wrong_passwords(port, count, 16, seconds, start, stats)]

        async def watch() -> None:
            while asyncio.get_running_loop().time() < until:
                stats["max_open"] = max(stats["max_open"], stats["open"])
                await asyncio.sleep(0.2)

        await asyncio.gather(watch(), *tasks)

    asyncio.run(main())
    print(json.dumps(stats), flush=True)


# -- the scraper and the run ---------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    scrapes: int = 0
    failures: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    server_threads: int = 0
    server_rss_mb: float = 0.0
    attacker: dict = field(default_factory=dict)
    quiet_scrapes: int = 0  # wrong-passwords: the scrapes of the quiet windows (its idle reference)
    quiet_p99_ms: float = 0.0

    @property
    def success_ratio(self) -> float:
        return (self.scrapes - self.failures) / self.scrapes if self.scrapes else 0.0


def scrape_for(
    port: int, seconds: float, pid: int, phase: Phase, interval: float = 0.03, windows_from: float | None = None
) -> None:
    """Scrapes for ``seconds``; with ``windows_from``, the scrapes of quiet windows apart (quiet_*)."""
    latencies: list[float] = []
    quiet: list[float] = []
    header = {"Authorization": authorization("scraper", PASSWORD)}
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(SCRAPER_ADDRESS, 0))
            conn.request("GET", "/metrics", headers=header)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            ok = response.status == 200 and body.startswith(b"# HELP")
        except OSError:
            ok = False
        elapsed = time.monotonic() - started
        if windows_from is not None and not in_attack_window(windows_from, started):
            # (the first third of a quiet window left out: checks of the attack window may still run)
            if ok and not in_attack_window(windows_from, started - WINDOW_SECONDS / 3):
                quiet.append(elapsed)
                phase.quiet_scrapes += 1
            time.sleep(max(0.0, interval - elapsed))
            continue
        phase.scrapes += 1
        if ok:
            latencies.append(elapsed)
        else:
            phase.failures += 1
        threads, rss = process_figures(pid)
        phase.server_threads, phase.server_rss_mb = max(phase.server_threads, threads), max(phase.server_rss_mb, rss)
        time.sleep(max(0.0, interval - elapsed))
    if quiet:
        phase.quiet_p99_ms = percentile(quiet, 0.99) * 1000
    if latencies:
        phase.p50_ms = percentile(latencies, 0.50) * 1000
        phase.p99_ms = percentile(latencies, 0.99) * 1000
        phase.max_ms = max(latencies) * 1000


@dataclass
class Options:
    seconds: float = 8.0  # per phase
    wrong_seconds: float = 8.0  # of attack windows (as many quiet ones between them)
    attackers: int = 1000
    reconnecting: int = 200
    wrong_passwords: int = 600
    max_connections: int = 800  # below the attackers: the global cap binds with many addresses
    read_timeout: float = 10.0
    workdir: Path = Path("bench/.work/listener")
    only: tuple[str, ...] = ()  # these phases only (all when empty)


def run(options: Options) -> list[Phase]:
    import bcrypt
    import yaml

    raise_open_file_limit()
    options.workdir.mkdir(parents=True, exist_ok=True)
    web_file = options.workdir / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    web_file.write_text(yaml.safe_dump({"basic_auth_users": {"scraper": hashed}}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    me = [sys.executable, "-m", "bench.listener"]
    root = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        [*me, "serve", "--port", str(port), "--web", str(web_file), "--max-connections", str(options.max_connections)]
        + ["--read-timeout", str(options.read_timeout)],
        cwd=root,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    phases: list[Phase] = []
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        scrape_for(port, 1, server.pid, Phase("warm-up"))  # the first check: bcrypt, then cached
        plan = [  # (wrong passwords next to idle: their p99s are compared, under the same background load)
            ("idle", None, 0),
            ("wrong-passwords", "wrong-passwords", options.wrong_passwords),
            ("slowloris-one-address", "slowloris-one-address", options.attackers),
            ("slowloris-many-addresses", "slowloris-many-addresses", options.attackers),
            ("reconnecting", "reconnecting", options.reconnecting),
        ]
        for name, mode, count in plan:
            if options.only and name not in options.only:
                continue
            phase = Phase(name)
            attacker = None
            windows_from = time.monotonic() + 1 if mode == "wrong-passwords" else None
            if mode is not None:
                seconds = (2 * options.wrong_seconds if windows_from else options.seconds) + 1
                attacker = subprocess.Popen(
                    [*me, "attack", "--port", str(port), "--mode", mode, "--seconds", str(seconds)]
                    + ["--count", str(count), "--start", str(windows_from or 0)],
                    cwd=root,
                    env=environment,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                time.sleep(1)  # the attack in place first
            # Wrong passwords: twice as long, half of it in quiet windows.
            scrape_for(
                port, seconds - 1 if windows_from else options.seconds, server.pid, phase, windows_from=windows_from
            )
            if attacker is not None:
                out, _ = attacker.communicate(timeout=60)
                phase.attacker = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            phases.append(phase)
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(30)
    return phases


def report(phases: list[Phase]) -> str:
    lines = [
        "| phase | scrapes | succeeded | p50 | p99 | max | server threads | server RSS | attacker |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for phase in phases:
        attacker = phase.attacker
        said = ""
        if attacker.get("connections") and attacker.get("max_open"):
            said = (
                f"{attacker['connections']:,} connections, up to {attacker['max_open']:,} open at once,"
                f" {attacker['closed_at_once']:,} closed at once"
            )
        elif attacker.get("connections"):
            said = f"{attacker['connections']:,} connections opened and dropped"
        if attacker.get("requests"):
            statuses = ", ".join(f"{k[7:]}: {v}" for k, v in sorted(attacker.items()) if k.startswith("status_"))
            said = (
                f"{attacker['requests']} wrong-password requests ({statuses}); p99 of the {phase.quiet_scrapes}"
                f" scrapes between them: {phase.quiet_p99_ms:.1f} ms"
            )
        lines.append(
            f"| {phase.name} | {phase.scrapes} | {phase.success_ratio:.1%} | {phase.p50_ms:.1f} ms"
            f" | {phase.p99_ms:.1f} ms | {phase.max_ms:.1f} ms | {phase.server_threads}"
            f" | {phase.server_rss_mb:.0f} MB | {said} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    serving = commands.add_parser("serve")
    serving.add_argument("--port", type=int, required=True)
    serving.add_argument("--web", required=True)
    serving.add_argument("--max-connections", type=int, default=800)
    serving.add_argument("--read-timeout", type=float, default=10.0)
    attacking = commands.add_parser("attack")
    attacking.add_argument("--port", type=int, required=True)
    attacking.add_argument("--mode", required=True)
    attacking.add_argument("--seconds", type=float, required=True)
    attacking.add_argument("--count", type=int, required=True)
    attacking.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=Options.seconds, help="per phase (default 8)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON, not a table")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.web, args.max_connections, args.read_timeout)
    elif args.command == "attack":
        attack(args.port, args.mode, args.seconds, args.count, args.start)
    else:
        phases = run(Options(seconds=args.seconds))
        print(json.dumps([asdict(p) for p in phases], indent=1) if args.json else report(phases))


if __name__ == "__main__":
    main()
