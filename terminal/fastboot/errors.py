"""Typed errors of the fastboot client: the device's refusals, timeouts, lost links and bad input."""

from __future__ import annotations

from i18n import N_
from terminal import errors as terminal_errors
from terminal.errors import NaiadError, UnitGone, UnitTimeout, UsbBackendMissing


class FastbootError(NaiadError):
    """Root of every fastboot error."""

    message = N_("Fastboot with {target} failed: {detail}")


class FastbootFailure(FastbootError):
    """The bootloader answered FAIL; ``reason`` is its own text."""

    message = N_("The bootloader refused '{command}': {reason}")
    remedy = N_("Read the bootloader's reason; check the partition name, the image and the slot, then retry.")

    @property
    def reason(self) -> str:
        return str(self.params.get("reason", ""))


class FastbootTimeout(FastbootError, UnitTimeout):
    message = N_("The bootloader at {target} did not answer '{command}' within {seconds} s")
    remedy = N_("Check that the unit is still in bootloader mode and that the cable is sound, then retry.")


class FastbootDisconnected(FastbootError, UnitGone):
    message = N_("The bootloader at {target} went away")
    remedy = N_("Re-plug the unit, put it back into bootloader mode and run the command again.")


class FastbootProtocolError(FastbootError):
    message = N_("The bootloader at {target} broke the fastboot protocol: {detail}")
    remedy = N_("The unit's bootloader is not standard fastboot; report it with the unit's serial.")


class FastbootHandshakeFailed(FastbootProtocolError):
    message = N_("{target} does not speak fastboot over TCP: {detail}")
    remedy = N_("Check the address and port; the unit must be in bootloader mode with fastboot TCP enabled.")


class FastbootConnectFailed(FastbootError):
    message = N_("Cannot reach the bootloader at {target}: {detail}")
    remedy = N_("Check the address and that the unit is in bootloader mode, then run 'naiad devices'.")


class FastbootUsbDeviceNotFound(FastbootConnectFailed):
    message = N_("No USB device at {target}")


class FastbootUsbBackendMissing(FastbootError):
    message = N_("Fastboot over USB needs the USB library (libusb), which is not available, to reach {target}")
    remedy = UsbBackendMissing.remedy


class InvalidFastbootCommand(FastbootError):
    """Bad input to the client: rejected before anything is sent to the unit."""

    message = N_("Not a valid fastboot command: {detail}")


class DownloadTooLarge(FastbootError):
    message = N_("{size} bytes is more than the bootloader accepts in one download ({limit} bytes)")
    remedy = N_("Split the image into sparse pieces no larger than the limit and flash those.")


class InvalidFastbootTarget(FastbootError):
    message = N_("Not a fastboot target: {target}")
    remedy = N_("Use tcp:HOST[:PORT] or usb:BUS-PORT.PORT, or give the unit's serial.")


class FastbootInterfaceNotFound(FastbootError):
    message = N_("The USB device at {target} has no fastboot interface")
    remedy = N_("Put the unit into bootloader mode (naiad reboot SERIAL --mode bootloader) and try again.")


class WrongUnit(FastbootError, terminal_errors.WrongUnit):
    message = N_("The bootloader at {target} belongs to unit {actual}, not {expected}")
    remedy = N_("Check the address, or run 'naiad devices' to find the unit's current port.")


class ImageUnreadable(FastbootError):
    """The image to download cannot be read, or is shorter than the size given for it."""

    message = N_("Cannot read the image {path}: {detail}")
    remedy = N_("Check the file's path, size and permissions.")


class NotInBootloader(FastbootError):
    message = N_("Unit {serial} is in {mode} mode, not in its bootloader")
    remedy = N_("Reboot the unit into bootloader mode first: naiad reboot {serial} --mode bootloader")
