"""The one exception root of Naiad and the errors of the wire.

Every error carries a message and, where a person can act, a remedy; both are catalog msgids,
translated when read, so the same error reads in Chinese or English.  Parameters must never hold
a key, PIN or other secret: they end up in logs and on screens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from i18n import N_, _


class NaiadError(Exception):
    """Root of every error Naiad raises on purpose."""

    message: ClassVar[str] = N_("Naiad failed")
    remedy: ClassVar[str | None] = None
    msgid_params: ClassVar[tuple[str, ...]] = ()
    """Parameters that hold a msgid (``N_``) rather than text: translated when the error is read, so they
    cross a process boundary (the simulator's control channel) in no particular language."""

    def __init__(self, message: str | None = None, *, remedy: str | None = None, **params: Any) -> None:
        self._message = message or type(self).message
        self._remedy = remedy if remedy is not None else type(self).remedy
        self.params = params
        super().__init__(self._message, params)

    def __str__(self) -> str:
        return render(self._message, self.params, self.msgid_params)

    @property
    def remedy_text(self) -> str | None:
        """The translated remedy, or None when there is nothing the user can do."""
        return render(self._remedy, self.params, self.msgid_params) if self._remedy else None

    def as_dict(self) -> dict[str, Any]:
        """For ``--json`` output: the error class, the text and the remedy in the current language."""
        return {"error": type(self).__name__, "message": str(self), "remedy": self.remedy_text}


def render(message: str, params: Mapping[str, Any], msgid_params: Iterable[str] = ()) -> str:
    """``message`` translated and filled in with ``params``, of which ``msgid_params`` are translated first."""
    names = set(msgid_params)
    return _(message, **{k: _(v) if k in names and isinstance(v, str) else v for k, v in params.items()})


class UnitGone(NaiadError):
    """The unit went away (unplugged, rebooted, powered off), on the management link or in fastboot alike.

    The one type for code that waits for a re-plug and retries; each link's error keeps its own message."""

    message = N_("The unit went away")
    remedy = N_("Re-plug the unit (try another cable or hub port if it keeps dropping) and run the step again.")


class UnitTimeout(NaiadError):
    """The unit did not answer within its deadline, whichever link it was on."""

    message = N_("The unit did not answer in time")
    remedy = N_("Check that the unit is powered and in the right mode, and that the cable is sound.")


class TransportError(NaiadError):
    message = N_("Communication with {path} failed")


class TransportNotFound(TransportError):
    message = N_("No port at {path}")
    remedy = N_("Check the cable and that the unit is powered, then run 'naiad devices'.")


class TransportPermissionDenied(TransportError):
    message = N_("No permission to open {path}")
    remedy = N_("Install the Naiad udev rule (run 'naiad doctor' for the command) and re-plug the unit.")


class TransportDisconnected(TransportError, UnitGone):
    message = N_("The unit at {path} was disconnected")
    remedy = UnitGone.remedy


class TransportTimeout(TransportError, UnitTimeout):
    message = N_("The unit at {path} did not answer in time")
    remedy = N_("Check that the unit is in run mode and that the cable is sound.")


class RequestTimeout(TransportTimeout):
    """A management request's whole budget ran out: no reply, or never a whole one."""

    message = N_("Unit {serial} at {path} did not answer {request} in time")


class InvalidTransportPath(TransportError):
    message = N_("Not a transport path: {path}")
    remedy = N_("Use serial:/dev/ttyACM0, tcp:HOST:PORT or usb:BUS-PORT.PORT.")


class ProtocolError(NaiadError):
    message = N_("Protocol error: {detail}")


class FrameError(ProtocolError):
    message = N_("Malformed frame: {detail}")


class RemoteError(ProtocolError):
    """The unit executed the request and refused it."""

    message = N_("The unit refused {request}: {code} ({detail})")


class TransferError(ProtocolError):
    message = N_("Transfer of {name} failed: {detail}")
    remedy = N_("Run the step again; the transfer restarts from the beginning.")


class ObjectTooLarge(TransferError):
    """The unit announced an object larger than the station reads of it: refused before the transfer."""

    message = N_("Unit {serial} offers {name} of {size} bytes; the station reads at most {limit} bytes of it")
    remedy = N_("The unit's firmware does not follow the management protocol: update it, or report it to its vendor.")


class TransferTooSlow(TransferError, UnitTimeout):
    """An object transfer outlasted its deadline, however valid each chunk was."""

    message = N_("Unit {serial} sent {name} too slowly: {received} of {total} bytes in {seconds} s")
    remedy = N_("Check the cable and run the step again; if it keeps happening, report the unit's firmware.")


class UsbBackendMissing(NaiadError):
    message = N_("No USB library (libusb) is available to list the units")
    remedy = N_("Install libusb 1.0 (Debian/Ubuntu: 'apt install libusb-1.0-0'; macOS: 'brew install libusb').")


class UnknownModel(NaiadError):
    message = N_("Unknown terminal model {model}")
    remedy = N_("Add a row for the model to the model table.")


class DeviceNotFound(NaiadError):
    message = N_("No attached unit with serial {serial}")
    remedy = N_("Check the cable, then run 'naiad devices' to list the attached units.")


class MalformedReply(ProtocolError):
    """A unit's reply broke the shape docs/protocol.md gives it: refused before anything reads it."""

    message = N_("Unit {serial} at {path} sent a malformed {request} reply: field {field} must be {expected}")
    remedy = N_("The unit's firmware does not follow the management protocol: update it, or report it to its vendor.")


class WrongUnit(NaiadError):
    """The unit that answered on a port is not the one discovery found there (fastboot's is a subclass)."""

    message = N_("The unit at {path} says it is {found}, not {expected}")
    remedy = N_("Units may have been swapped or re-plugged: run 'naiad devices' and try again.")
