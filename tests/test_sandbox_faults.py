"""The sandbox's fault knobs, each observable by a station: 503s, replies dropped after commit, spikes, 429s."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import requests
from sandbox_station import SUPPLIER_ID, Station, sandbox_fixture, station_fixture  # noqa: F401 - fixtures

import enrollment.sandbox.app as sandbox_app
from enrollment.gateway import Method, SubCode
from enrollment.sandbox.faults import MAX_TRACKED_APPS, FaultPlan, Faults
from enrollment.sandbox.server import Sandbox

SERIALS = (f"FT{n:05d}" for n in itertools.count())


@pytest.fixture(autouse=True)
def no_faults_after(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults = Faults()


def registration(station: Station, serial: str) -> dict[str, str]:
    biz: dict[str, Any] = {
        "out_request_no": f"R-{serial}",
        "supplier_id": SUPPLIER_ID,
        "devices": [{"serial": serial, "model": "DF2"}],
    }
    return station.params(Method.INVENTORY_REGISTER, biz)


def test_the_error_rate_answers_503_before_any_work(station: Station, sandbox: Sandbox) -> None:
    serial = next(SERIALS)
    sandbox.faults = Faults(error_rate=1.0)
    response = station.post(registration(station, serial))
    assert response.status_code == 503
    assert station.reply(response, Method.INVENTORY_REGISTER)["code"] == "20000"
    sandbox.faults = Faults()
    assert station.device(serial) is None


def test_a_dropped_reply_is_a_connection_error_after_the_work_was_committed(station: Station, sandbox: Sandbox) -> None:
    serial = next(SERIALS)
    params = registration(station, serial)
    sandbox.faults = Faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        station.post(params)
    sandbox.faults = Faults()
    assert station.device(serial) is not None
    again = station.reply(station.post(params), Method.INVENTORY_REGISTER)  # the same request, sent again
    assert again["results"] == [{"serial": serial, "status": "registered"}]


def test_a_latency_spike_delays_the_reply(station: Station, sandbox: Sandbox) -> None:
    sandbox.faults = Faults(latency_rate=1.0, latency_seconds=5.0)
    with pytest.raises(requests.ReadTimeout):
        station.http.post(
            sandbox.url, data=registration(station, next(SERIALS)), timeout=(10, 0.5), verify=str(station.ca)
        )


def test_the_rate_limit_answers_429_with_retry_after(station: Station, sandbox: Sandbox) -> None:
    sandbox.faults = Faults(rate_limit=1)
    responses = [station.post(registration(station, next(SERIALS))) for _ in range(6)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(r.headers["Retry-After"] == "1" for r in limited)
    assert station.reply(limited[0], Method.INVENTORY_REGISTER)["sub_code"] == SubCode.RATE_LIMITED
    assert all(r.status_code in (200, 429) for r in responses)


def test_the_rate_limit_counts_only_authenticated_requests(station: Station, sandbox: Sandbox) -> None:
    sandbox.faults = Faults(rate_limit=5)
    unsigned = {**registration(station, next(SERIALS)), "sign": "AAAA"}
    for _ in range(6):  # unsigned junk naming the station's app
        assert station.post(unsigned).status_code == 200
        assert station.post({"app_id": "x" * 1000}).status_code == 200
    assert station.post(registration(station, next(SERIALS))).status_code == 200


def test_a_dropped_reply_resets_the_connection_and_ends_even_if_no_disconnect_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Transport:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def abort(self) -> None:
            self.calls.append("abort")

        def close(self) -> None:
            self.calls.append("close")

    async def never() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: MutableMapping[str, Any]) -> None:
        raise AssertionError("a dropped reply sends nothing")

    monkeypatch.setattr(sandbox_app, "DROP_WAIT_SECONDS", 0.01)
    transport = Transport()
    asyncio.run(sandbox_app.DroppedReply()({"type": "http", sandbox_app.TRANSPORT: transport}, never, send))
    assert transport.calls == ["abort"]  # a reset: not even a TLS close is sent


def test_the_same_seed_draws_the_same_faults() -> None:
    faults = Faults(latency_rate=0.3, error_rate=0.3, drop_rate=0.2, seed=7)
    first, second = FaultPlan(faults), FaultPlan(Faults(**vars(faults)))
    draws = [first.draw() for _ in range(50)]
    assert draws == [second.draw() for _ in range(50)]
    assert {d.error for d in draws} == {True, False} and {d.drop for d in draws} == {True, False}
    assert {d.delay for d in draws} == {0.0, 2.0}


def test_the_rate_limit_counts_each_app_per_second() -> None:
    now = [100.0]
    plan = FaultPlan(Faults(rate_limit=2), monotonic=lambda: now[0])
    assert [plan.limited("a") for _ in range(3)] == [False, False, True]
    assert not plan.limited("b")
    now[0] += 1.0
    assert not plan.limited("a")


def test_the_rate_limit_forgets_idle_app_ids() -> None:
    now = [100.0]
    plan = FaultPlan(Faults(rate_limit=1), monotonic=lambda: now[0])
    for n in range(MAX_TRACKED_APPS + 1):
        plan.limited(f"app-{n}")
    assert plan.limited("app-0")  # still within its second
    now[0] += 1.0
    plan.limited("app-x")
    assert len(plan._recent) == 1
