"""Shared fixtures: a simulator process per test, in its own state directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pg import PostgresServer

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NAIAD_LANG", "en")


class SimHandle:
    """A running simulator: its state directory, status and control channel."""

    def __init__(self, state_dir: Path) -> None:
        from simulator.control import SimControl

        self.state_dir = state_dir
        self.control = SimControl(state_dir)

    def terminals(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.control.call("status")["terminals"]
        return result

    def serials(self) -> list[str]:
        return [t["serial"] for t in self.terminals()]

    def terminal(self, serial: str) -> dict[str, Any]:
        return next(t for t in self.terminals() if t["serial"] == serial)

    def call(self, cmd: str, **args: Any) -> Any:
        return self.control.call(cmd, **args)


@pytest.fixture
def sim_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start simulators with ``sim_factory(terminals=N, **faults)``; all stop after the test."""
    from simulator import launcher

    started: list[SimHandle] = []

    def start(terminals: int = 1, models: list[str] | None = None, name: str = "sim", **faults: float) -> SimHandle:
        state = tmp_path / name
        launcher.start_detached(state, terminals, models, faults)
        handle = SimHandle(state)
        started.append(handle)
        monkeypatch.setenv("NAIAD_SIM", str(state))
        return handle

    yield start
    for handle in started:
        if handle.control.running():
            launcher.stop(handle.state_dir)


@pytest.fixture
def sim(sim_factory: Any) -> SimHandle:
    """One simulated terminal in run mode."""
    handle: SimHandle = sim_factory(terminals=1)
    return handle


@pytest.fixture(scope="module")
def module_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    """One simulated terminal in run mode shared by a module's tests that leave it as they found it (reads,
    refused requests): a simulator costs about 2 s to start and stop.  Reach its units by their pty; unlike
    ``sim`` it does not set NAIAD_SIM."""
    from simulator import launcher

    handle = SimHandle(tmp_path_factory.mktemp("module-sim"))
    launcher.start_detached(handle.state_dir, 1)
    try:
        yield handle
    finally:
        if handle.control.running():
            launcher.stop(handle.state_dir)


@pytest.fixture(autouse=True)
def _language_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that switches the language (``--lang``, the console's switch) leaves the next one in English."""
    import i18n

    monkeypatch.setattr(i18n, "_language", None)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the real configuration and data directories."""
    monkeypatch.setenv("NAIAD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NAIAD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (tests/pg.py); skipped without its binaries."""
    from pg import PostgresServer, PostgresUnavailable, find_bin_dir

    pytest.importorskip("psycopg", reason="psycopg is not installed")
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; CI installs them")
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database()


SLOW_DEFAULT_S = 10.0
"""The weight of a ``slow`` mark that does not say its ``seconds``."""


def _slow_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    if marker is None:
        return 0.0
    return float(marker.kwargs.get("seconds", SLOW_DEFAULT_S))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with ``slow`` tests first, the longest first (``pytest.mark.slow(seconds=N)``: about how long the
    file takes), every file's tests together in their own order.  Each file stays on one worker (``--dist
    loadfile``, files sent in this order with ``--no-loadscope-reorder``), so a long file started last would keep
    one core busy alone at the end of the run (the kill test once did, for 75 s)."""
    weight: dict[Path, float] = {}
    for item in items:
        weight[item.path] = max(weight.get(item.path, 0.0), _slow_seconds(item))
    items.sort(key=lambda item: -weight[item.path])  # stable: the collection's order otherwise
