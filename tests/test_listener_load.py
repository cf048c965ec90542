"""The listener under attack on loopback (bench/listener.py in a bounded form, ~50 s): with 1,000
slow connections from one address or from forty, and with an attacker that keeps reconnecting (4 s
each), >= 99 % of authenticated scrapes succeed with p99 <= 1 s; 600 wrong passwords (over 10 s of
attack windows, as many quiet ones between them: the idle reference under the same background
load) keep the scrapes' p99 under twice the quiet one; the server's threads and memory stay bounded."""

from __future__ import annotations

import pytest

from bench import listener


@pytest.fixture(scope="module")
def phases(tmp_path_factory):
    options = listener.Options(seconds=4, wrong_seconds=10, workdir=tmp_path_factory.mktemp("listener"))
    phases = {phase.name: phase for phase in listener.run(options)}
    print("\n" + listener.report(list(phases.values())))
    return phases


@pytest.mark.parametrize("attack", ["slowloris-one-address", "slowloris-many-addresses", "reconnecting"])
def test_authenticated_scrapes_get_through_every_attack(phases, attack):
    phase = phases[attack]
    assert phase.scrapes >= 50
    assert phase.success_ratio >= 0.99, phase
    assert phase.p99_ms <= 1000, phase


def test_the_attacks_were_real(phases):
    one = phases["slowloris-one-address"].attacker
    assert one["connections"] >= 1000 and one["closed_at_once"] >= 900, one  # the per-peer cap at work
    many = phases["slowloris-many-addresses"].attacker
    assert many["max_open"] >= 0.9 * listener.Options.max_connections, many  # the global cap reached
    assert phases["reconnecting"].attacker["connections"] >= 1000
    assert phases["wrong-passwords"].attacker["requests"] >= 600


def test_wrong_passwords_do_not_slow_valid_scrapes(phases):
    wrong = phases["wrong-passwords"]
    # The idle reference: the scrapes of the quiet windows between the bursts of wrong passwords.
    idle = max(wrong.quiet_p99_ms, listener.IDLE_P99_FLOOR_SECONDS * 1000)
    assert wrong.quiet_scrapes >= 50 and wrong.success_ratio == 1.0
    assert wrong.p99_ms < 2 * idle, (wrong.p99_ms, idle)


def test_threads_and_memory_stay_bounded(phases):
    # main thread, the event loop's, one bcrypt worker (and the interpreter's occasional helper)
    assert max(phase.server_threads for phase in phases.values()) <= 6
    assert max(phase.server_rss_mb for phase in phases.values()) <= 150
