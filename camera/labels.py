"""How people read the camera steps' outcomes: field-check verdicts and the figures of a check or a depth run.

One table each, shared by the CLI and the console's panel so both say the same words in the same units.  This
module loads no OpenCV (the console imports it at start); :mod:`camera.fieldcheck` and :mod:`camera.depth`
re-export the tables beside the code that produces the figures.
"""

from __future__ import annotations

import math
from typing import Any

from i18n import N_, _

NO_VALUE = "—"
"""What a figure that was not measured shows."""

VERDICT_LABELS: dict[str, str] = {  # camera.fieldcheck.FieldVerdict values -> label msgid
    "ok": N_("Camera OK: no drift found"),
    "recalibrate": N_("Calibration drifted: recalibrate the camera"),
    "projector": N_("IR projector dead: no depth"),
    "depth": N_("Depth too sparse on the target"),
    "rgb-focus": N_("RGB camera out of focus"),
    "foreign": N_("Stored calibration belongs to another unit"),
    "no-target": N_("No board or wall in view"),
}

# Figures as (key, label msgid, value msgid with its unit).  Keys in PERCENT_FIGURES are shares (0..1) in the
# results and are shown in per cent.
DEPTH_FIGURES: tuple[tuple[str, str, str], ...] = (  # camera.depth.DepthQuality
    ("fill_rate", N_("Fill rate"), N_("{value:.1f} %")),
    ("plane_rms_mm", N_("Plane-fit RMS"), N_("{value:.2f} mm")),
    ("plane_rms_pct", N_("Plane-fit RMS (of distance)"), N_("{value:.3f} %")),
    ("z_median_mm", N_("Z median"), N_("{value:.1f} mm")),
    ("z_error_mm", N_("Z error"), N_("{value:+.2f} mm")),
    ("z_error_pct", N_("Z error (of distance)"), N_("{value:+.3f} %")),
    ("subpixel_rms_px", N_("Subpixel RMS"), N_("{value:.3f} px")),
)
CHECK_FIGURES: tuple[tuple[str, str, str], ...] = (  # camera.fieldcheck.FieldCheck
    ("reprojection_rms_px", N_("Reprojection"), N_("{value:.2f} px")),
    ("misalignment_px", N_("IR-RGB misalignment"), N_("{value:.2f} px")),
    ("depth_bias_pct", N_("Depth bias"), N_("{value:+.2f} %")),
    ("fill_rate", N_("Fill rate"), N_("{value:.1f} %")),
    ("board_distance_m", N_("Board distance"), N_("{value:.2f} m")),
)
PERCENT_FIGURES = frozenset({"fill_rate"})


def verdict_text(verdict: object) -> str:
    """A verdict as people read it, translated (an unknown one as it is)."""
    msgid = VERDICT_LABELS.get(str(verdict))
    return _(msgid) if msgid else str(verdict)


def figure_text(key: str, value_msgid: str, value: Any) -> str:
    """One figure with its unit, translated; :data:`NO_VALUE` when it was not measured (None, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        return NO_VALUE
    shown = 100.0 * float(value) if key in PERCENT_FIGURES else float(value)
    return _(value_msgid, value=shown)
