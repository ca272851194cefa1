"""Typed errors of the enrollment domain.  Parameters never hold a key, a token or a signature."""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError

from .gateway import Code


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


class PlatformRefused(EnrollmentError):
    """The platform answered, signed, and refused the call: ``code`` (gateway.Code) and ``sub_code`` say why.

    Sending the same call again gets the same refusal, so it is never retried."""

    message = N_("The merchant platform refused {method}: {sub_msg} ({code} {sub_code})")
    remedy = N_("Correct what the platform names (device, merchant, store, program) and run the step again.")

    def __init__(self, *, method: str, code: str, sub_code: str, sub_msg: str) -> None:
        remedy = _REFUSAL_REMEDIES.get(code)
        super().__init__(remedy=remedy, method=method, code=code, sub_code=sub_code, sub_msg=sub_msg)
        self.code, self.sub_code, self.sub_msg = code, sub_code, sub_msg


_REFUSAL_REMEDIES: dict[str, str] = {
    Code.UNAUTHORISED: N_(
        "Check that the station's platform key (key_label, 'naiad platform keygen') is the one the platform has for "
        "app_id, and that the station's clock is right."
    ),
    Code.FORBIDDEN: N_(
        "The platform does not let this app do that: check app_id and supplier_id in the configuration."
    ),
    Code.MISSING_PARAMETER: N_("The station sent a request the platform does not accept: report it with the sub-code."),
    Code.INVALID_PARAMETER: N_("The station sent a request the platform does not accept: report it with the sub-code."),
}
"""What to do about a refusal that is not about the business (whose remedy is the class's)."""


class PlatformUnavailable(EnrollmentError):
    """No usable answer after every attempt (connection, deadline, HTTP 5xx or 429, the platform busy).

    ``detail`` is a msgid saying what happened last.  A call in the outbox stays pending and is sent again."""

    message = N_("The merchant platform did not answer {method} after {attempts} attempts: {detail}")
    remedy = N_(
        "Check the station's network connection; the call stays in the outbox and 'naiad register resume' sends it "
        "again."
    )
    msgid_params = ("detail",)


class PlatformNotTrusted(PlatformUnavailable):
    """The HTTPS server did not prove it is the platform (its certificate is not trusted): never retried."""

    message = N_("The merchant platform's HTTPS certificate was not accepted for {method}")
    remedy = N_(
        "Check url and ca_certificate in the platform configuration (or the station's clock); an unexpected "
        "certificate can mean the connection is intercepted."
    )


class PlatformReplyInvalid(EnrollmentError):
    """A reply the station cannot trust or use: not the gateway's format, a field of the wrong type or form, an
    echoed request number or serial that is not the request's, too large.  ``detail`` is a msgid, ``field``
    names where (``results[2].status``, ``body``, ``HTTP 404``).  Never retried: the call stays pending."""

    message = N_("The merchant platform's reply to {method} is not usable ({field}): {detail}")
    remedy = N_(
        "Check url in the platform configuration; if it is right, report the platform's reply (the call stays "
        "in the outbox)."
    )
    msgid_params = ("detail",)


class PlatformSignatureInvalid(PlatformReplyInvalid):
    """A reply whose platform signature does not verify: nothing in it is believed."""

    message = N_("The merchant platform's signature on its reply to {method} does not verify")
    remedy = N_(
        "Check that platform_public_key in the platform configuration is the platform's current key; if it is, "
        "the reply was altered on the way: report it."
    )
