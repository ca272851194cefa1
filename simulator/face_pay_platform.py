"""How the simulated units' face-pay app reaches the merchant platform: its access and one signed gateway call.

The access (``{"url", "ca_certificate", "platform_public_key", "app_id", "private_key"}``, what
``Sandbox.terminal_config()`` gives) is the terminal vendor's app, shared by every unit of the simulator.  The
control command ``platform`` sets it; it is kept owner-only (0600) in ``DIR/platform.json``, since it holds the
app's private key, and read again when the simulator restarts.  Calls use the platform's own wire codec
(``enrollment.gateway``, the only part of enrollment the simulator imports) and trust only the given CA.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enrollment.gateway import (
    MAX_BODY,
    BadSignature,
    Code,
    GatewayFormatError,
    Method,
    decode_response,
    load_public_key,
    now_timestamp,
    request_parameters,
    response_key,
    rsa_signer,
)
from i18n import N_
from terminal.errors import NaiadError

from .state import one_line, replace_atomically

LOG = logging.getLogger(__name__)
CONFIG_FILE = "platform.json"
CA_FILE = "platform-ca.pem"
FIELDS = ("url", "ca_certificate", "platform_public_key", "app_id", "private_key")
APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_PEM = 16 * 1024
CALL_SECONDS = 8.0  # for one exchange, from connecting to the reply's last byte
ATTEMPTS = 2  # a transient failure (no connection, 503, 429, 20000) is tried once more with the same number
RETRY_PAUSE = 0.2


class PlatformAccessInvalid(NaiadError):
    message = N_("The platform access for the simulated units is not usable: {detail}")
    remedy = N_("Give the file 'naiad platform serve --terminal-config FILE' wrote, unchanged.")
    msgid_params = ("detail",)


class Unreachable(Exception):
    """The platform did not answer (no connection, TLS refused, a reply cut short or late); ``detail`` for the
    station, in English like every detail a unit sends."""


class PlatformFailed(Exception):
    """The platform answered, but not with success: ``sub_code`` when it refused the business (else "")."""

    def __init__(self, detail: str, sub_code: str = "") -> None:
        super().__init__(detail)
        self.sub_code = sub_code


@dataclass(frozen=True)
class PlatformAccess:
    url: str
    app_id: str
    public_key: rsa.RSAPublicKey = field(repr=False)
    private_key: rsa.RSAPrivateKey = field(repr=False)
    ca_file: Path


def _invalid(detail: str) -> PlatformAccessInvalid:
    return PlatformAccessInvalid(detail=detail)


def parse_access(data: Any, ca_file: Path) -> PlatformAccess:
    """``data`` checked field by field (PlatformAccessInvalid naming what is wrong); nothing is written."""
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        raise _invalid(N_("it must be an object with url, ca_certificate, platform_public_key, app_id, private_key"))
    if not all(isinstance(data[name], str) and 0 < len(data[name]) <= MAX_PEM for name in FIELDS):
        raise _invalid(N_("every field must be non-empty text"))
    if not data["url"].lower().startswith("https://"):
        raise _invalid(N_("the url must be an https:// address"))
    if not APP_ID.fullmatch(data["app_id"]):
        raise _invalid(N_("the app_id is not an app id"))
    try:
        x509.load_pem_x509_certificate(data["ca_certificate"].encode())
    except ValueError:
        raise _invalid(N_("the ca_certificate is not a PEM certificate")) from None
    try:
        public_key = load_public_key(data["platform_public_key"])
    except GatewayFormatError:
        raise _invalid(N_("the platform_public_key is not an RSA public key of 2048 bits or more")) from None
    try:
        private_key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        private_key = None
    if not isinstance(private_key, rsa.RSAPrivateKey) or private_key.key_size < 2048:
        raise _invalid(N_("the private_key is not an unencrypted RSA private key of 2048 bits or more"))
    return PlatformAccess(data["url"], data["app_id"], public_key, private_key, ca_file)


class PlatformStore:
    """The simulator's platform access in ``DIR/platform.json`` (0600): set by the control command, read at start."""

    def __init__(self, state_dir: Path) -> None:
        self.path, self.ca_file = state_dir / CONFIG_FILE, state_dir / CA_FILE
        self.access: PlatformAccess | None = None
        if self.path.exists():
            try:
                config = json.loads(self.path.read_text(encoding="utf-8"))
                self.access = self._trusting(config, parse_access(config, self.ca_file))
            except (OSError, ValueError, PlatformAccessInvalid) as exc:
                LOG.warning("the stored platform access %s is not usable (%s): units have none", self.path, exc)

    def set(self, config: Any) -> dict[str, Any]:
        """Give every unit ``config`` (None: take the access away); a bad one changes nothing."""
        if config is None:
            self.path.unlink(missing_ok=True)
            self.access = None
            return {"configured": False}
        access = parse_access(config, self.ca_file)  # checked before anything is written
        replace_atomically(self.path, json.dumps(config).encode(), private=True)
        self.access = self._trusting(config, access)
        LOG.info("platform access set: app %s at %s", access.app_id, access.url)
        return {"configured": True, "url": access.url, "app_id": access.app_id}

    def _trusting(self, config: dict[str, Any], access: PlatformAccess) -> PlatformAccess:
        """``access`` once its CA is where the HTTPS client reads it."""
        replace_atomically(self.ca_file, config["ca_certificate"].encode())
        return access


def call(access: PlatformAccess, method: Method, biz: Mapping[str, Any], give_up: float) -> dict[str, Any]:
    """The success response of ``method`` with ``biz``; a transient failure is tried again with the same request
    number until ``give_up`` (monotonic).  Unreachable or PlatformFailed otherwise."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _attempt(access, method, biz, min(CALL_SECONDS, max(0.1, give_up - time.monotonic())))
        except (Unreachable, _Busy) as exc:
            if attempt == ATTEMPTS or time.monotonic() + RETRY_PAUSE >= give_up:
                if isinstance(exc, _Busy):
                    raise PlatformFailed(str(exc)) from None
                raise
            time.sleep(RETRY_PAUSE)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


class _Busy(Exception):
    """The platform said it cannot serve now (HTTP 503 or 429, code 20000)."""


def _attempt(access: PlatformAccess, method: Method, biz: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    params = request_parameters(access.app_id, method, biz, rsa_signer(access.private_key), now_timestamp())
    status, body = _exchange(access, method, params, seconds)
    if status in (429, 503):
        raise _Busy(f"{method}: the platform is busy (HTTP {status})")
    if status != 200 or len(body) > MAX_BODY:
        raise PlatformFailed(f"{method}: unexpected HTTP {status} reply")
    try:
        reply = decode_response(response_key(method), body, access.public_key)
    except BadSignature:
        raise PlatformFailed(f"{method}: the platform's signature does not verify") from None
    except GatewayFormatError as exc:
        raise PlatformFailed(f"{method}: not a gateway reply ({exc.reason})") from None
    code = reply.get("code")
    if code == Code.SUCCESS:
        return reply
    if code == Code.UNAVAILABLE:
        raise _Busy(f"{method}: the platform is busy ({reply.get('sub_code')})")
    sub_code = one_line(str(reply.get("sub_code", "")))[:64]
    sub_msg = one_line(str(reply.get("sub_msg", "")))[:200]
    raise PlatformFailed(f"{method}: refused {one_line(str(code))[:8]} {sub_code}: {sub_msg}", sub_code)


def _exchange(access: PlatformAccess, method: Method, params: Mapping[str, str], seconds: float) -> tuple[int, bytes]:
    """(HTTP status, body) of one POST, within ``seconds`` in all.  ``requests``' timeouts bound each read, not
    the whole reply, and the app runs on the unit's link thread: so the exchange runs in a worker that is left
    behind when the time is up (it stops reading at the next chunk), and a platform dripping its reply cannot
    hold the unit."""
    # here, not at the top: most simulators never call a platform, and these cost every start 0.2 s of CPU
    import requests
    import urllib3

    until = time.monotonic() + seconds
    outcome: Future[tuple[int, bytes]] = Future()

    def work() -> None:
        try:
            outcome.set_result(_post(access, params, seconds, until))
        except BaseException as exc:  # handed to the waiting app as it is
            outcome.set_exception(exc)

    threading.Thread(target=work, name="platform-call", daemon=True).start()
    try:
        return outcome.result(timeout=seconds)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, FutureTimeout) as exc:
        raise Unreachable(f"{method}: no answer from the platform ({type(exc).__name__})") from None


def _post(access: PlatformAccess, params: Mapping[str, str], seconds: float, until: float) -> tuple[int, bytes]:
    """Send ``params``; read the reply a chunk at a time until it ends, MAX_BODY is passed or ``until`` is."""
    import requests

    with requests.Session() as session:
        session.trust_env = False  # no proxy or CA bundle from the environment: this CA only
        response = session.post(
            access.url,
            data=params,
            timeout=(seconds, seconds),
            verify=str(access.ca_file),
            allow_redirects=False,
            stream=True,
        )
        with response:
            body = bytearray()
            while len(body) <= MAX_BODY:
                if time.monotonic() >= until:
                    raise TimeoutError("the reply did not end in time")
                chunk = response.raw.read1(MAX_BODY + 1 - len(body), decode_content=False)
                if not chunk:
                    break
                body += chunk
            return response.status_code, bytes(body)
