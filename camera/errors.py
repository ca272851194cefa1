"""The errors of the camera package: one root, so callers can catch every camera failure at once.

depth and wire keep their own errors in their own modules, subclassing ``CameraError``; calibration's own
errors live here with it.
"""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError


class CameraError(NaiadError):
    """Root of every error of the camera package (calibration, depth quality, field check, frames)."""

    message = N_("The camera step failed")
    remedy = N_("Check the camera's view and lighting, then run the step again.")
