"""Depth in false colour, for people: near is red, far is blue (OpenCV's Turbo map), no depth is black."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from .depth import UnusableSetting, require_image


def false_colour(depth_mm: npt.NDArray[np.uint16], range_mm: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """BGR ``uint8`` (H, W, 3) picture of ``depth_mm``: ``range_mm`` spread over the colour map, depth outside
    it clamped to the nearer end, pixels without depth (0) black."""
    depth = require_image(depth_mm, "depth", np.uint16)
    near, far = range_mm
    if not 0 <= near < far <= 65535:
        raise UnusableSetting(name="range_mm", value=range_mm)
    scaled = (np.clip(depth.astype(np.float32), near, far) - near) * (255.0 / (far - near))
    # Turbo runs blue (0) to red (255): flip it so that near reads red, as depth views usually show it.
    picture = cv2.applyColorMap((255.0 - scaled).astype(np.uint8), cv2.COLORMAP_TURBO)
    picture[depth == 0] = 0
    return np.ascontiguousarray(picture, dtype=np.uint8)
