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


class NoImagePairs(CameraError):
    message = N_("No ir_NN.png and rgb_NN.png image pairs in {directory}")
    remedy = N_("Point at the folder that holds the captured images, named ir_00.png, rgb_00.png, ir_01.png ...")


class UnmatchedImages(CameraError):
    message = N_("These images have no partner of the same number: {names}")
    remedy = N_("Each ir_NN.png needs an rgb_NN.png taken at the same instant: add the partner or remove the image.")


class CorruptImage(CameraError):
    message = N_("The image {path} cannot be used: {detail}")
    remedy = N_("Capture the image again or remove the pair from the folder.")


class BoardNotFound(CameraError):
    message = N_("No view in {directory} shows the board: {detail}")
    remedy = N_("Check that the board file describes the printed board (dictionary, squares, legacy pattern).")


class TooFewViews(CameraError):
    message = N_("Only {found} usable views of the board; a calibration needs at least {needed}")
    remedy = N_("Capture more views: the board at different distances, tilts and places in the image.")


class CoverageTooLow(CameraError):
    message = N_("The views cover {coverage:.0%} of the image; at least {needed:.0%} is needed")
    remedy = N_("Capture views with the board near the image's empty parts (as image fractions x, y): {holes}")


class CalibrationFailed(CameraError):
    message = N_("The calibration does not meet its limits: {details}")
    remedy = N_("Capture sharper views that cover the whole image, with the board flat and well lit, and try again.")
