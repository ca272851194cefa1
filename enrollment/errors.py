"""Typed errors of the enrollment domain.  Parameters never hold a key, a token or a signature."""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError


class EnrollmentError(NaiadError):
    """Root of every enrollment error."""

    message = N_("The merchant platform step failed: {detail}")


class PlatformNotConfigured(EnrollmentError):
    message = N_("No merchant platform is configured on this station")
    remedy = N_(
        "Pass --platform-config FILE or set NAIAD_PLATFORM_CONFIG (the sandbox writes one: "
        "'naiad platform serve --station-config FILE')."
    )


class PlatformConfigInvalid(EnrollmentError):
    """A platform configuration file that cannot be used; ``line`` is 0 when the problem is not on one line."""

    message = N_("The platform configuration {path} is not usable (line {line}): {reason}")
    remedy = N_("Fix the file, or write a new one with 'naiad platform serve --station-config FILE'.")
    msgid_params = ("reason",)
