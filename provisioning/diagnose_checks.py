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

from camera.detect import Detection, detect
from firmware.bundle import Bundle
from firmware.manifest import SPARSE
from firmware.signing import TrustStore
from firmware.sparse import PIECE, ChunkType, SparseReader
from terminal.camera import Board

# --- the camera self-test's limits (module constants: the same for every model the table has today) ----------

SPECKLE_GAIN_MIN = 1.2
"""The projector-on IR frame's contrast (high-pass RMS over mean) over the flood-lit IR frame's, whole frames: the
dots add fine contrast to whatever surface is in range (measured on the simulator: 1.00 dead and 1.65 working on
the board scene; 33 on a wall at 0.6 m, 6 on a face at 0.5 m).  Below it the projector is judged dead only when
the board is seen (a surface in range); facing nothing, the dots land nowhere and prove nothing."""
IR_MEAN_RANGE = (12.0, 240.0)
"""Grey levels a flood-lit IR frame's mean over the board must lie within: darker is a dead flood LED or sensor,
brighter clipped."""
IR_CLIPPED_MAX = 0.05
"""Share of saturated (255) IR pixels above which the exposure or the sensor is faulty (whatever the scene)."""
RGB_SHARPNESS_MIN = 100.0
"""Variance of the Laplacian of the RGB frame's grey image over the board's region: a defocused lens (a knock, a
loose mount) smooths the board's edges many-fold (measured on the simulator's board: 34 defocused, 1180 in
focus).  A scene without the board is not judged: a wall has no edges, and a face few."""
BOARD_CORNERS_MIN = 6
"""ChArUco corners in a view for the board to count as seen there."""


@dataclass(frozen=True)
class SelfTest:
    """The self-test's figures, and which parts passed: True, False, or None when the scene cannot tell (no board
    in view: a unit facing nothing, a wall or a face is not judged on what only the board shows)."""

    speckle_contrast: float
    flood_contrast: float
    depth_fill: float
    ir_mean: float
    ir_clipped: float
    ir_noise: float
    rgb_sharpness: float | None
    board_ir: int = 0
    """Board corners found in the flood-lit IR view."""
    board_rgb: int = 0
    """Board corners found in the RGB view."""

    @property
    def speckle_gain(self) -> float:
        return self.speckle_contrast / self.flood_contrast if self.flood_contrast > 0 else 0.0

    @property
    def board_seen(self) -> bool:
        return self.board_ir >= BOARD_CORNERS_MIN

    @property
    def projector_ok(self) -> bool | None:
        """Dots seen: it works, whatever the scene; none on the board: dead; none and no board: cannot tell."""
        if self.speckle_gain >= SPECKLE_GAIN_MIN:
            return True
        return False if self.board_seen else None

    @property
    def ir_ok(self) -> bool | None:
        if self.ir_clipped > IR_CLIPPED_MAX:
            return False
        low, high = IR_MEAN_RANGE
        if low <= self.ir_mean <= high:
            return True
        return False if self.board_seen else None  # a dark room with nothing in view is not a dead sensor

    @property
    def rgb_ok(self) -> bool | None:
        """On the board's region; the board seen by IR but not found by RGB is a defocused RGB camera (the field
        check's rule); no board at all: cannot tell."""
        if self.board_rgb >= BOARD_CORNERS_MIN and self.rgb_sharpness is not None:
            return self.rgb_sharpness >= RGB_SHARPNESS_MIN
        return False if self.board_seen else None

    @property
    def judged(self) -> bool:
        return None not in (self.projector_ok, self.ir_ok, self.rgb_ok)

    def figures(self) -> dict[str, float | bool | int | None]:
        return {
            "speckle_contrast": round(self.speckle_contrast, 4),
            "speckle_gain": round(self.speckle_gain, 3),
            "depth_fill": round(self.depth_fill, 4),
            "ir_mean": round(self.ir_mean, 2),
            "ir_clipped": round(self.ir_clipped, 4),
            "ir_noise": round(self.ir_noise, 3),
            "rgb_sharpness": None if self.rgb_sharpness is None else round(self.rgb_sharpness, 2),
            "board_ir": self.board_ir,
            "board_rgb": self.board_rgb,
            "projector_ok": self.projector_ok,
            "ir_ok": self.ir_ok,
            "rgb_ok": self.rgb_ok,
            "judged": self.judged,
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


def board_region(detection: Detection, shape: tuple[int, ...]) -> npt.NDArray[np.bool_] | None:
    """The image's pixels inside the hull of the board's detected corners (None without enough corners)."""
    if detection.count < BOARD_CORNERS_MIN:
        return None
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.asarray(detection.corners, np.float32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    return mask.astype(bool) if mask.any() else None


def self_test(
    speckle_ir: npt.NDArray[np.generic],
    depth: npt.NDArray[np.generic],
    flood_ir: npt.NDArray[np.generic],
    rgb: npt.NDArray[np.generic],
    board: Board,
) -> SelfTest:
    """The figures of a projector-on IR frame with its depth, and a flood-lit IR frame with its RGB frame, judged
    on the region of ``board`` (the calibration board held up) in each view where it is seen."""
    fill = float(np.count_nonzero(depth)) / max(depth.size, 1)
    flood = _grey(flood_ir)
    rgb_grey = _grey(rgb)
    ir_found, rgb_found = detect(flood_ir, board), detect(rgb, board)
    ir_region = board_region(ir_found, flood.shape)
    rgb_region = board_region(rgb_found, rgb_grey.shape)
    sharpness = None if rgb_region is None else float(cv2.Laplacian(rgb_grey, cv2.CV_32F)[rgb_region].var())
    return SelfTest(
        speckle_contrast=_contrast(_grey(speckle_ir)),  # whole frame: the dots land on whatever is in range
        flood_contrast=_contrast(flood),
        depth_fill=fill,
        ir_mean=float(flood[ir_region].mean()) if ir_region is not None else float(flood.mean()),
        ir_clipped=float(np.count_nonzero(flood >= 255)) / max(flood.size, 1),
        ir_noise=float(np.sqrt(np.mean(_high_pass(flood) ** 2))),
        rgb_sharpness=sharpness,
        board_ir=ir_found.count,
        board_rgb=rgb_found.count,
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
