"""``naiad`` against a deliberately hostile unit on a real pty: a translated error naming it, exit 1, no traceback.

The unit (tests/hostile_unit.py) is listed on a simulated USB bus, so the command finds it by serial through
the real discovery, opens its pty with pyserial and speaks the real wire to it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hostile_unit import MAX_STREAM, SERIAL, Answer, PtyUnit, forging, genuine, reply_wire

import i18n
from console.cli import cli
from terminal.client import ManagementClient
from terminal.errors import MalformedReply, NaiadError, RequestTimeout, WrongUnit
from terminal.framing import FLAG_REPLY, Frame, encode_frame
from terminal.protocol import MessageType, Payload

BUDGET = 2.0  # seconds: a request's whole budget in these tests (the station's default is 10)
pytestmark = pytest.mark.timeout(30)  # under MAX_STREAM ticks: a station that never gives up fails


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``hostile(answer, listed_serial=SERIAL)``: a PtyUnit on the bus that ``naiad`` uses; closed after the test."""
    monkeypatch.setitem(ManagementClient.__init__.__kwdefaults__, "timeout", BUDGET)
    units: list[PtyUnit] = []

    def start(answer: Answer, listed_serial: str = SERIAL) -> PtyUnit:
        units.append(PtyUnit(tmp_path / "bus", answer, listed_serial))
        return units[-1]

    yield start
    for unit in units:
        unit.close()


def naiad(tmp_path: Path, *args: str, lang: str = "en") -> Result:
    """``naiad --sim BUS --lang LANG ARGS`` in this process; an exception that escapes fails the test."""
    command = ["--sim", str(tmp_path / "bus"), "--lang", lang, *args]
    return CliRunner().invoke(cli, command, catch_exceptions=False)


def refused(result: Result, error: NaiadError) -> None:
    """The command printed ``error`` in the current language, with its remedy, and exited 1 without a traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{i18n._('Error')}: {error}" in result.output and str(error.remedy_text) in result.output


def malformed(unit: PtyUnit, request: str, field: str, expected: str) -> MalformedReply:
    return MalformedReply(path=unit.path, serial=SERIAL, request=request, field=field, expected=expected)


@pytest.mark.parametrize(
    ("fields", "field", "expected"),
    [({"slots": "a, b"}, "slots", "{text: ...}"), ({"secure_element": ["empty"]}, "secure_element", "{...}")],
    ids=["slots text", "secure element list"],
)
def test_info_table_refuses_a_malformed_info(
    hostile: Any, tmp_path: Path, fields: Payload, field: str, expected: str
) -> None:
    unit = hostile(forging(MessageType.INFO, **fields))
    refused(naiad(tmp_path, "info", SERIAL), malformed(unit, "info", field, expected))


def test_info_json_refuses_a_byte_string_and_shows_unknown_bytes_as_hex(hostile: Any, tmp_path: Path) -> None:
    unit = hostile(forging(MessageType.INFO, camera_module=b"SL3D", uptime=b"\x00\xff"))
    result = naiad(tmp_path, "info", SERIAL, "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = malformed(unit, "info", "camera_module", "text")
    assert json.loads(result.output) == {"error": "MalformedReply", "message": str(error), "remedy": error.remedy_text}

    unit.end.answer = forging(MessageType.INFO, uptime=b"\x00\xff")  # a field the protocol does not define
    shown = naiad(tmp_path, "info", SERIAL, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["uptime"] == "00ff"


@pytest.mark.parametrize("max_frame", ["4096", math.nan, [4096]], ids=["text", "nan", "list"])
def test_a_malformed_hello_is_refused(hostile: Any, tmp_path: Path, max_frame: Any) -> None:
    unit = hostile(forging(MessageType.HELLO, max_frame=max_frame))
    refused(naiad(tmp_path, "info", SERIAL), malformed(unit, "hello", "max_frame", "uint"))
    assert [r.type for r in unit.end.requests] == [MessageType.HELLO]


def test_a_unit_resending_fragment_0_of_2_times_out_within_the_request_budget(hostile: Any, tmp_path: Path) -> None:
    """The unit never stops sending (until MAX_STREAM frames); the station gives up at its budget, long before."""

    def first_fragment_forever(request: Frame, payload: Payload) -> bytes:
        if request.type == MessageType.HELLO:
            return reply_wire(request, genuine(request, payload))
        unit.stream = encode_frame(Frame(request.seq, request.type, b"\xa1", FLAG_REPLY, fragment=0, fragments=2))
        return b""

    unit = hostile(first_fragment_forever)
    refused(naiad(tmp_path, "info", SERIAL), RequestTimeout(path=unit.path, serial=SERIAL, request="info"))
    assert 0 < unit.streamed < MAX_STREAM  # it gave up while the unit was still talking


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_a_unit_naming_another_serial_is_refused(hostile: Any, tmp_path: Path, lang: str) -> None:
    unit = hostile(forging(0), listed_serial="DF2A00001")
    result = naiad(tmp_path, "info", "DF2A00001", lang=lang)
    refused(result, WrongUnit(path=unit.path, expected="DF2A00001", found=SERIAL))
    assert [r.type for r in unit.end.requests] == [MessageType.HELLO]
    if lang == "zh_CN":
        assert "自称是" in result.output  # the catalog's words, not the English msgid
