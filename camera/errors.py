"""The errors of the camera package: one root, so callers can catch every camera failure at once.

depth and wire keep their own errors in their own modules, subclassing ``CameraError``; calibration's own
errors live here with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from i18n import N_, _
from terminal.errors import NaiadError


class CameraError(NaiadError):
    """Root of every error of the camera package (calibration, depth quality, field check, frames)."""

    message = N_("The camera step failed")
    remedy = N_("Check the camera's view and lighting, then run the step again.")


class NotAFolder(CameraError):
    message = N_("{directory} does not exist or is not a folder")
    remedy = N_("Point at the folder that holds the captured images, named ir_00.png, rgb_00.png, ir_01.png ...")


class NoImagePairs(CameraError):
    message = N_("No ir_NN.png and rgb_NN.png image pairs in {directory}")
    remedy = N_("Point at the folder that holds the captured images, named ir_00.png, rgb_00.png, ir_01.png ...")


class UnmatchedImages(CameraError):
    message = N_("These images have no partner of the same number: {names}")
    remedy = N_("Each ir_NN.png needs an rgb_NN.png taken at the same instant: add the partner or remove the image.")


class DuplicateImages(CameraError):
    message = N_("These images have the same camera and number: {names}")
    remedy = N_("Keep one image per camera and number (ir_07.png and IR_7.png are the same pair): remove the others.")


class CorruptImage(CameraError):
    message = N_("The image {path} cannot be used: {detail}")
    remedy = N_("Capture the image again or remove the pair from the folder.")


class BoardNotFound(CameraError):
    message = N_("No view in {directory} shows the board: {detail}")
    remedy = N_("Check that the board file describes the printed board (dictionary, squares, legacy pattern).")


class Skip(NamedTuple):
    """A pair of views a calibration left out: its number, the kind of reason (SKIP_KINDS) and the reason."""

    pair: str
    kind: str
    reason: str


SKIP_KINDS = {  # how a summary counts each kind of reason, most common kinds first
    "no-board": N_("{count} without the board (pairs {pairs})"),
    "blurred": N_("{count} blurred (pairs {pairs})"),
    "too-few": N_("{count} with too few corners (pairs {pairs})"),
    "not-common": N_("{count} with too few corners seen by both cameras (pairs {pairs})"),
    "redundant": N_("{count} redundant (pairs {pairs})"),
    "outlier": N_("{count} fitting far worse than the others (pairs {pairs})"),
}
_NAMED = 5  # pair numbers a summary names per kind


class ViewsLeftOut(CameraError):
    """A calibration that failed with pairs left out: it says how many and why (and lists them in ``--json``)."""

    def __init__(self, message: str | None = None, *, skipped: Sequence[Skip] = (), **params: Any) -> None:
        super().__init__(message, **params)
        self.skipped = list(skipped)

    def __str__(self) -> str:
        text = super().__str__()
        if not self.skipped:
            return text
        parts = []
        for kind, msgid in SKIP_KINDS.items():
            pairs = [s.pair for s in self.skipped if s.kind == kind]
            if pairs:
                named = ", ".join(pairs[:_NAMED]) + (", …" if len(pairs) > _NAMED else "")
                parts.append((len(pairs), _(msgid, count=len(pairs), pairs=named)))
        summary = "; ".join(part for _count, part in sorted(parts, key=lambda p: -p[0]))
        return _("{text} (pairs left out: {summary})", text=text, summary=summary)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "skipped": [s._asdict() for s in self.skipped]}


class TooFewViews(ViewsLeftOut):
    message = N_("Only {found} usable views of the board; a calibration needs at least {needed}")
    remedy = N_("Capture more views: the board at different distances, tilts and places in the image.")


class CoverageTooLow(ViewsLeftOut):
    message = N_("The views cover {coverage:.0%} of the image; at least {needed:.0%} is needed")
    remedy = N_("Capture views with the board near the image's empty parts (as image fractions x, y): {holes}")


class CalibrationFailed(ViewsLeftOut):
    message = N_("The calibration does not meet its limits: {details}")
    remedy = N_(
        "Capture sharp, well lit views of a rigid board that cover the whole image at several distances and tilts, "
        "and try again."
    )


class BoardNotTilted(ViewsLeftOut):
    message = N_("The views do not pin down the focal length: {details}")
    remedy = N_(
        "Capture more views with the board tilted 20 to 40 degrees: top towards and away from the camera, and "
        "left side towards and away from it."
    )
