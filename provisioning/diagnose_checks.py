"""What the read-only diagnosis steps measure, apart from talking to the unit: the flashed bundle's content hashes,
the camera self-test's figures from captured frames, and the thresholds that judge them (with their reasons).

Kept apart from ``diagnose_steps`` so each idea reads in one sitting and the figures can be tested on plain arrays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from firmware.bundle import Bundle
from firmware.manifest import SPARSE
from firmware.signing import TrustStore
from firmware.sparse import PIECE, ChunkType, SparseReader

# --- the camera self-test's limits (module constants: the same for every model the table has today) ----------

SPECKLE_GAIN_MIN = 1.2
"""The projector-on IR frame's contrast (high-pass RMS over mean) over the flood-lit IR frame's of the same scene:
the dots add fine contrast whatever the scene holds; a dead projector adds none (measured on the simulator: 1.00
dead, 1.65 working on the board scene)."""
DEPTH_FILL_MIN = 0.15
"""Share of depth pixels with a value: structured-light depth comes from the dots; without them there is none
(measured: 0 dead; 0.46 on the board scene, which fills under half the view)."""
IR_MEAN_RANGE = (12.0, 240.0)
"""Grey levels a flood-lit IR frame's mean must lie within: darker is a dead flood LED or sensor, brighter clipped."""
IR_CLIPPED_MAX = 0.05
"""Share of saturated (255) IR pixels above which the exposure or the sensor is faulty."""
RGB_SHARPNESS_MIN = 100.0
"""Variance of the Laplacian of the RGB frame's grey image: a defocused lens (a knock, a loose mount) smooths the
scene's edges and drops it many-fold (measured on the simulator's board scene: 24 defocused, 598 in focus)."""


@dataclass(frozen=True)
class SelfTest:
    """The self-test's figures and which parts passed."""

    speckle_contrast: float
    flood_contrast: float
    depth_fill: float
    ir_mean: float
    ir_clipped: float
    ir_noise: float
    rgb_sharpness: float

    @property
    def speckle_gain(self) -> float:
        return self.speckle_contrast / self.flood_contrast if self.flood_contrast > 0 else 0.0

    @property
    def projector_ok(self) -> bool:
        return self.speckle_gain >= SPECKLE_GAIN_MIN and self.depth_fill >= DEPTH_FILL_MIN

    @property
    def ir_ok(self) -> bool:
        low, high = IR_MEAN_RANGE
        return low <= self.ir_mean <= high and self.ir_clipped <= IR_CLIPPED_MAX

    @property
    def rgb_ok(self) -> bool:
        return self.rgb_sharpness >= RGB_SHARPNESS_MIN

    def figures(self) -> dict[str, float | bool]:
        return {
            "speckle_contrast": round(self.speckle_contrast, 4),
            "speckle_gain": round(self.speckle_gain, 3),
            "depth_fill": round(self.depth_fill, 4),
            "ir_mean": round(self.ir_mean, 2),
            "ir_clipped": round(self.ir_clipped, 4),
            "ir_noise": round(self.ir_noise, 3),
            "rgb_sharpness": round(self.rgb_sharpness, 2),
            "projector_ok": self.projector_ok,
            "ir_ok": self.ir_ok,
            "rgb_ok": self.rgb_ok,
        }


def _grey(image: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return np.asarray(image, dtype=np.float32)


def _high_pass(grey: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return grey - cv2.GaussianBlur(grey, (0, 0), 2.0)


def _contrast(grey: npt.NDArray[np.float32]) -> float:
    """Fine contrast: the high-pass RMS over the mean level."""
    return float(np.sqrt(np.mean(_high_pass(grey) ** 2)) / max(float(grey.mean()), 1.0))


def self_test(
    speckle_ir: npt.NDArray[np.generic],
    depth: npt.NDArray[np.generic],
    flood_ir: npt.NDArray[np.generic],
    rgb: npt.NDArray[np.generic],
) -> SelfTest:
    """The figures of a projector-on IR frame with its depth, and a flood-lit IR frame with its RGB frame."""
    fill = float(np.count_nonzero(depth)) / max(depth.size, 1)
    flood = _grey(flood_ir)
    rgb_grey = _grey(rgb)
    return SelfTest(
        speckle_contrast=_contrast(_grey(speckle_ir)),
        flood_contrast=_contrast(flood),
        depth_fill=fill,
        ir_mean=float(flood.mean()),
        ir_clipped=float(np.count_nonzero(flood >= 255)) / max(flood.size, 1),
        ir_noise=float(np.sqrt(np.mean(_high_pass(flood) ** 2))),
        rgb_sharpness=float(cv2.Laplacian(rgb_grey, cv2.CV_32F).var()),
    )


# --- firmware: what a bundle puts on each partition -----------------------------------------------------------


def content_sha256(bundle: Bundle, name: str) -> str:
    """Hex SHA-256 of the bytes the image ``name`` writes, in offset order: a raw image's own SHA-256; a sparse
    image's RAW and FILL data, DONT_CARE holes left out (what a unit's ``diag/slot-hashes`` reports).  A verified
    bundle made them in its one verifying pass (:attr:`firmware.bundle.Bundle.content_sha256`); no second read."""
    if bundle.verified and name in bundle.content_sha256:
        return bundle.content_sha256[name]
    image = next(p for p in bundle.partitions if p.name == name)
    if image.type != SPARSE:
        return image.sha256
    digest = hashlib.sha256()
    with bundle.open_image(name, check_hash=True) as stream:
        reader = SparseReader(stream)
        block_size = reader.header.block_size
        for chunk in reader.chunks():
            if chunk.type is ChunkType.RAW:
                for data in reader.payload():
                    digest.update(data)
            elif chunk.type is ChunkType.FILL:
                left = chunk.blocks * block_size
                piece = chunk.fill * (min(left, PIECE) // 4)
                while left:
                    step = min(left, len(piece))
                    digest.update(piece[:step])
                    left -= step
    return digest.hexdigest()


@dataclass(frozen=True)
class FlashedBundle:
    """What a bundle puts on a unit: its version and each partition's content SHA-256."""

    version: str
    images: dict[str, str]


def bundle_images(path: Path) -> FlashedBundle:
    """The version and content hashes of the signed bundle at ``path`` (checked against the trusted keys)."""
    with Bundle.open(path, TrustStore()) as bundle:
        bundle.verify()  # one pass: every hash checked, the content hashes made on the way
        return FlashedBundle(
            bundle.manifest.version, {p.name: content_sha256(bundle, p.name) for p in bundle.partitions}
        )
