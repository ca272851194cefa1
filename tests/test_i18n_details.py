"""Technical details of errors read in the user's language: no English prose passed as ``detail=``.

An error's message is a msgid, but many errors fill a ``{detail}`` with a sentence of their own; written as a
plain or f-string literal, that sentence stays English under ``--lang zh_CN``.  The source check below finds
such literals; the other tests show real failures reading without an English sentence.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import sparse_image

import i18n
from console import __version__
from console.cli import VERSION_TEXT, cli
from firmware.errors import MalformedManifest, MalformedSignature, MalformedSparseImage
from firmware.manifest import Manifest
from firmware.signing import ManifestSignature
from firmware.sparse import SparseReader, parse_header
from simulator.control import SimulatorCommandFailed
from terminal.errors import FrameError, NaiadError
from terminal.fastboot.errors import FastbootProtocolError, InvalidFastbootCommand
from terminal.fastboot.protocol import build_command, check_token, parse_response
from terminal.framing import decode_body
from terminal.protocol import decode_payload

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("console", "provisioning", "firmware", "keys", "camera", "enrollment", "terminal", "simulator")
TEXT_KEYWORDS = {"detail", "reason"}  # the parameters errors fill with a sentence of their own
TRANSLATORS = {"_", "N_"}
# Three or more words of Latin letters in a row: an English phrase (paths, hex and single names are not).
ENGLISH = re.compile(r"[A-Za-z]{2,}(?:[ ,;:]+[A-Za-z]{2,}){2,}")


def _is_translation(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in TRANSLATORS


def _english_literal(node: ast.expr) -> bool:
    """True when ``node`` builds text from a literal of our own outside ``_()``/``N_()``."""
    if _is_translation(node):
        return False
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value != ""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _english_literal(node.left) or _english_literal(node.right)
    if isinstance(node, ast.BoolOp):
        return any(_english_literal(value) for value in node.values)
    if isinstance(node, ast.IfExp):
        return _english_literal(node.body) or _english_literal(node.orelse)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {"format", "join"}:
        return isinstance(node.func.value, ast.Constant) and node.func.value.value not in ("", ", ")
    return False


def untranslated_details(source: str, filename: str = "<source>") -> Iterator[str]:
    """``file:line: detail=...`` for each text keyword argument built from an untranslated literal."""
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in TEXT_KEYWORDS and _english_literal(keyword.value):
                    yield f"{filename}:{node.lineno}: {keyword.arg}={ast.unparse(keyword.value)[:80]}"


def test_the_check_finds_literal_and_formatted_details() -> None:
    bad = (
        'raise MalformedBundle(path=p, detail="no zip end-of-central-directory record")\n'
        'raise FrameError(detail=f"protocol version {v}")\n'
        'raise ImageUnreadable(path=p, detail=exc.strerror or "unreadable")\n'
        'raise InvalidRelease(field="x", detail="must be from 0 to " + str(m))\n'
        'raise TransferError(name=n, detail="bad chunk at {o}".format(o=o))\n'
    )
    good = (
        'raise MalformedBundle(path=p, detail=_("it has no zip end-of-central-directory record"))\n'
        'raise FrameError(detail=_("it has protocol version {version}", version=v))\n'
        'raise ImageUnreadable(path=p, detail=_("it could not be opened: {reason}", reason=exc.strerror or exc))\n'
        'raise RemoteError(request=r, code=c, detail=payload.get("detail", ""))\n'
        'raise NoUnitsAttached(serial="-", detail="")\n'
    )
    assert len(list(untranslated_details(bad))) == 5
    assert list(untranslated_details(good)) == []


def test_no_error_detail_is_an_untranslated_literal() -> None:
    found = [
        line
        for package in PACKAGES
        if (ROOT / package).is_dir()
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in untranslated_details(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not found, "wrap each detail in _() with its numbers and names as parameters:\n" + "\n".join(found)


# --- real failures, read in Chinese --------------------------------------------------------------------


@pytest.fixture
def chinese() -> Iterator[None]:
    i18n.set_language("zh_CN")
    try:
        yield
    finally:
        i18n.set_language("en")


def _bad_sparse_magic() -> None:
    parse_header(b"\0" * 28)


def _sparse_ending_in_a_chunk() -> None:
    data = sparse_image(4096, [("raw", bytes(8192), 2)])
    list(SparseReader(io.BytesIO(data[:-100])).chunks())


def _manifest_not_an_object() -> None:
    Manifest.parse(b"[1, 2]", "fw.zip")


def _signature_with_a_bad_key_id() -> None:
    ManifestSignature.decode(b'{"algorithm":"ed25519","key_id":"zz","signature":""}', "fw.zip")


def _short_frame() -> None:
    decode_body(b"\x01\x02")


def _payload_not_a_map() -> None:
    decode_payload(b"\x01")


def _short_fastboot_response() -> None:
    parse_response(b"OK")


def _partition_name_with_a_colon() -> None:
    check_token("boot:a", "partition name")


def _command_with_a_control_byte() -> None:
    build_command("getvar", "a\x01")


FAILURES: dict[str, tuple[Callable[[], None], type[NaiadError]]] = {
    "sparse magic": (_bad_sparse_magic, MalformedSparseImage),
    "sparse truncated": (_sparse_ending_in_a_chunk, MalformedSparseImage),
    "manifest shape": (_manifest_not_an_object, MalformedManifest),
    "signature key id": (_signature_with_a_bad_key_id, MalformedSignature),
    "short frame": (_short_frame, FrameError),
    "payload shape": (_payload_not_a_map, FrameError),
    "fastboot response": (_short_fastboot_response, FastbootProtocolError),
    "fastboot token": (_partition_name_with_a_colon, InvalidFastbootCommand),
    "fastboot command": (_command_with_a_control_byte, InvalidFastbootCommand),
}


@pytest.mark.usefixtures("chinese")
@pytest.mark.parametrize("name", FAILURES)
def test_technical_details_read_in_chinese(name: str) -> None:
    fail, expected = FAILURES[name]
    with pytest.raises(expected) as caught:
        fail()
    text = str(caught.value)
    assert "{" not in text and not ENGLISH.search(text), text


def test_a_truncated_bundle_is_described_in_chinese(tmp_path: Path) -> None:
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as zf:
        zf.writestr("manifest.json", "{}" * 2000)
    truncated = tmp_path / "fw.zip"
    truncated.write_bytes(whole.read_bytes()[:1000])
    env = {"NAIAD_CONFIG_DIR": str(tmp_path / "config")}
    result = CliRunner().invoke(cli, ["--lang", "zh_CN", "firmware", "inspect", str(truncated), "--json"], env=env)
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)
    assert error["error"] == "MalformedBundle"
    message = error["message"].replace(str(truncated), "")
    assert not ENGLISH.search(message), message
    shown = CliRunner().invoke(cli, ["--lang", "zh_CN", "firmware", "inspect", str(truncated)], env=env)
    assert shown.exit_code == 1 and not ENGLISH.search(shown.output.replace(str(truncated), "")), shown.output


def test_a_simulator_refusal_reads_in_the_callers_language(sim: Any) -> None:
    """The simulator runs in English (NAIAD_LANG=en); its refusal crosses the control channel as msgids."""
    serial = sim.serials()[0]
    i18n.set_language("zh_CN")
    with pytest.raises(SimulatorCommandFailed) as out_of_range:
        sim.call("faults", serial=serial, ber=2)
    with pytest.raises(SimulatorCommandFailed) as unknown:
        sim.call("faults", serial=serial, no_such_fault=1)
    for caught in (out_of_range, unknown):
        text = str(caught.value)
        assert not ENGLISH.search(text) and caught.value.remedy_text, text
    assert i18n.translate("it must be a probability from 0 to 1", "zh_CN") in str(out_of_range.value)
    assert "no_such_fault" in str(unknown.value)


# --- click's last English texts ---------------------------------------------------------------------------


def test_the_version_line_and_a_missing_argument_read_in_chinese() -> None:
    expected = i18n.translate(VERSION_TEXT, "zh_CN").format(version=__version__)
    assert expected != VERSION_TEXT.format(version=__version__)
    env = {**os.environ, "NAIAD_LANG": "zh_CN"}
    bare = subprocess.run([sys.executable, "-m", "console.cli", "--version"], env=env, capture_output=True, text=True)
    assert bare.stdout.strip() == expected  # the fast path, before click is loaded
    assert CliRunner().invoke(cli, ["--lang", "zh_CN", "--version"]).output.strip() == expected
    missing = CliRunner().invoke(cli, ["--lang", "zh_CN", "logs"])
    assert missing.exit_code == 2 and missing.output.rstrip().endswith("'SERIAL'。"), missing.output
    english = CliRunner().invoke(cli, ["--lang", "en", "logs"])
    assert english.output.rstrip().endswith("Missing argument 'SERIAL'.")
