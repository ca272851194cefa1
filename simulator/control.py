"""The simulator's control channel: JSON lines over a loopback TCP socket named in ``DIR/sim.json``.

Tests, ``naiad sim`` and trainers use it to read status and to inject faults while terminals run.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from i18n import N_, _
from terminal.errors import NaiadError, render

Command = Callable[..., Any]

SHUTDOWN_POLL_S = 0.05
"""How often the control loop looks for a stop request."""


class SimulatorNotRunning(NaiadError):
    message = N_("No simulator is running in {state}")
    remedy = N_("Start one with 'naiad sim start --terminals N --state DIR --detach'.")


class SimulatorCommandFailed(NaiadError):
    message = N_("The simulator refused '{command}': {detail}")


class UnknownTerminal(SimulatorCommandFailed):
    message = N_("The simulator has no terminal {serial}; it runs {known}")
    remedy = N_("Name one of those serials ('naiad sim status' lists them).")


# Errors the control channel carries typed (class name and parameters), so the caller reads them translated.
# Any other NaiadError crosses as its msgids and parameters, and the caller renders it in its own language.
_TYPED_ERRORS: dict[str, type[NaiadError]] = {cls.__name__: cls for cls in (UnknownTerminal,)}


def _reply(handler: socketserver.StreamRequestHandler, commands: dict[str, Command]) -> None:
    for line in handler.rfile:
        try:
            request = json.loads(line)
            command = commands[request.pop("cmd")]
            answer = {"ok": True, "result": command(**request)}
        except NaiadError as exc:
            name = type(exc).__name__
            answer = {
                "ok": False,
                "error": f"{name}: {exc}",
                "type": name,
                "message": type(exc).message,
                "remedy": type(exc).remedy,
                "msgid_params": type(exc).msgid_params,
                "params": exc.params,
            }
        except Exception as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        handler.wfile.write(json.dumps(answer, default=str).encode() + b"\n")


class ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, commands: dict[str, Command]) -> None:
        commands_ = commands

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                _reply(self, commands_)

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve_in_background(self) -> threading.Thread:
        # shutdown() waits for the loop's next poll: at the default 0.5 s, every simulator stop took half a second
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S}, name="sim control", daemon=True
        )
        thread.start()
        return thread


class SimControl:
    """Client of a running simulator's control channel."""

    def __init__(self, state_dir: str | Path, timeout: float = 10.0) -> None:
        self.state_dir = Path(state_dir)
        self.timeout = timeout

    def address(self) -> tuple[str, int]:
        try:
            info = json.loads((self.state_dir / "sim.json").read_text(encoding="utf-8"))
            return "127.0.0.1", int(info["control_port"])
        except (OSError, ValueError, KeyError) as exc:
            raise SimulatorNotRunning(state=str(self.state_dir)) from exc

    def call(self, cmd: str, **args: Any) -> Any:
        try:
            with socket.create_connection(self.address(), timeout=self.timeout) as sock:
                sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
                line = sock.makefile("rb").readline()
        except OSError as exc:
            raise SimulatorNotRunning(state=str(self.state_dir)) from exc
        if not line:
            raise SimulatorNotRunning(state=str(self.state_dir))
        answer = json.loads(line)
        if not answer["ok"]:
            typed = _TYPED_ERRORS.get(answer.get("type", ""))
            if typed is not None:
                raise typed(**answer["params"])
            if "message" in answer:  # a NaiadError of the simulator's: its text in this side's language
                text = render(answer["message"], answer["params"], answer.get("msgid_params", ()))
                params = {**answer["params"], "command": cmd, "detail": text}
                raise SimulatorCommandFailed(remedy=answer.get("remedy"), **params)
            detail = _("an unexpected error in the simulator: {error}", error=answer["error"])
            raise SimulatorCommandFailed(command=cmd, detail=detail)
        return answer["result"]

    def running(self) -> bool:
        try:
            self.call("ping")
        except SimulatorNotRunning:
            return False
        return True
