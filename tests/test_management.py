"""Management protocol end to end against the simulator, over real pseudo-terminals.

The tests that only read from the unit or are refused share one simulator (``module_sim``); a test that changes
the unit (its clock, its cable, its link's noise) starts its own."""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any

import pytest

from terminal.client import ManagementClient
from terminal.errors import RemoteError, TransportDisconnected, WrongUnit
from terminal.protocol import OBJECT_LOOPBACK, MessageType


def client_for(sim: Any, serial: str | None = None, **options: Any) -> ManagementClient:
    terminal = sim.terminal(serial) if serial else sim.terminals()[0]
    return ManagementClient(f"serial:{terminal['pty']}", **options)


def test_info_reports_the_unit(module_sim: Any) -> None:
    terminal = module_sim.terminals()[0]
    with client_for(module_sim) as client:
        info = client.info()
    assert info["serial"] == terminal["serial"]
    assert info["model"] == terminal["model"]
    assert info["hardware_revision"] == terminal["hardware_revision"]
    assert info["active_slot"] in info["slots"]
    assert info["boot_count"] == terminal["boot_count"] >= 1
    assert {"secure_element", "camera_module"} <= info.keys()


def test_time_can_be_set(sim: Any) -> None:
    with client_for(sim) as client:
        target = time.time() + 3600
        client.time(target)
        assert abs(client.time() - target) < 5


def test_logs_arrive_whole(module_sim: Any) -> None:
    with client_for(module_sim) as client:
        seen: list[tuple[int, int]] = []
        logs = client.logs(progress=lambda done, total: seen.append((done, total)))
    assert "boot #1 into run mode" in logs
    assert seen and seen[-1][0] == seen[-1][1]


def test_unknown_request_is_refused_with_a_typed_error(module_sim: Any) -> None:
    with client_for(module_sim) as client, pytest.raises(RemoteError) as caught:
        client.request(0x01FF, {})
    assert "unknown-type" in str(caught.value)


@pytest.mark.slow(seconds=30)  # 1 % of bytes lost: 15-60 s
def test_noisy_link_never_executes_twice(sim_factory: Any) -> None:
    sim = sim_factory(terminals=1, ber=1e-4, drop=0.01)
    serial = sim.serials()[0]
    blob = os.urandom(1_000)
    # 1 % of bytes lost: even at the smallest frame size a fragment gets through only about half the time, so a
    # request takes 1-20 s and, on a loaded 2-core machine, more than 30 s now and then (measured: issue 11's
    # note).  The budget is generous on purpose: this test is about answers and executions, not speed.
    with client_for(sim, timeout=120) as client:
        before = sim.call("executions", serial=serial)
        for _ in range(10):
            assert client.info()["serial"] == serial
        assert "boot #1" in client.logs()
        writes: list[int] = []
        client.write_object(OBJECT_LOOPBACK, blob, progress=lambda done, total: writes.append(done))
        assert client.read_object(OBJECT_LOOPBACK) == blob
        after = sim.call("executions", serial=serial)
    assert after.get("info", 0) - before.get("info", 0) == 10
    assert after.get("object_read", 0) - before.get("object_read", 0) >= 2
    # one execution per chunk; a retransmitted chunk was answered from the reply cache
    assert after.get("object_write", 0) - before.get("object_write", 0) == len(writes)
    # the noise really forced retransmissions, and the unit answered them from its cache
    assert client.retransmissions > 0


def test_unplug_mid_transfer_fails_at_once_and_replug_recovers(sim: Any) -> None:
    serial = sim.serials()[0]
    with client_for(sim) as client:
        sim.call("faults", serial=serial, unplug_after_bytes=200_000)
        retransmissions = client.retransmissions
        with pytest.raises(TransportDisconnected) as caught:
            client.write_object(OBJECT_LOOPBACK, os.urandom(4 * 1024 * 1024))
        assert client.retransmissions == retransmissions  # at once: no waiting out retransmission timers
    assert caught.value.remedy_text  # says what to do, in the user's language
    assert sim.terminal(serial)["pty"] is None
    sim.call("replug", serial=serial)
    with client_for(sim, serial) as client:
        assert client.info()["serial"] == serial


def test_a_unit_is_refused_when_it_is_not_the_one_expected(module_sim: Any) -> None:
    serial = module_sim.serials()[0]
    with pytest.raises(WrongUnit) as caught, client_for(module_sim, expected_serial="DF2NOTTHIS1"):
        pass
    assert caught.value.params["found"] == serial
    with client_for(module_sim, expected_serial=serial) as client:
        assert client.identity["serial"] == serial


@pytest.mark.parametrize("utc", [math.nan, math.inf, -math.inf, -1.0, 1e12, True, "1700000000", [1]])
def test_time_refuses_what_is_not_a_time(module_sim: Any, utc: Any) -> None:
    with client_for(module_sim) as client:
        before = client.time()
        with pytest.raises(RemoteError) as caught:
            client.request(MessageType.TIME, {"utc": utc})
        assert caught.value.params["code"] == "bad-request"
        assert abs(client.time() - before) < 5  # the clock was left alone


def test_a_hello_host_cannot_forge_a_line_in_the_unit_log(sim: Any) -> None:
    forged = "naiad\n2026-01-01T00:00:00Z boot #99 into run mode\u2028\x1b[2J"
    with client_for(sim) as client:
        client.request(MessageType.HELLO, {"protocol": 1, "session": client.session, "host": forged})
        lines = client.logs().splitlines()
    assert not any("boot #99" in line and "hello from" not in line for line in lines)
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line) for line in lines)  # every line is an event
    assert any(
        line.endswith(r"hello from naiad\x0a2026-01-01T00:00:00Z boot #99 into run mode\u2028\x1b[2J") for line in lines
    )
