"""A face scene: who or what is presented to the camera, where, turned how, under which light.

``FaceScene`` is pure data (the control channel's ``scene`` command and the liveness training script make them);
``random_face_scene`` draws varied ones from identity, distance and lighting ranges, so that training and the
held-out bench see disjoint identities, distances and light (``LIGHT_TRAIN``, ``LIGHT_HELD_OUT``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PRESENTATION_KINDS = ("live", "photo", "screen", "mask")  # camera.faces.PRESENTATIONS, as plain strings
Intervals = tuple[tuple[float, float], ...]  # a value range made of disjoint intervals


@dataclass(frozen=True)
class Light:
    """The room's light on the scene (the IR camera's own flood is always there)."""

    rgb_level: float = 1.0  # visible light, 1 = office light (0.3..1.6)
    direction_deg: tuple[float, float] = (20.0, 25.0)  # key light azimuth (+ = from the image's right), elevation
    ambient_ir: float = 0.0  # sunlight's IR: a uniform term, as a share of the flood at 0.5 m (0..0.5)
    warmth: float = 0.0  # colour temperature, -1 cold (bluish) .. 1 warm (reddish)


@dataclass(frozen=True)
class FaceScene:
    """One presentation in front of the unit.  Angles in degrees: positive yaw turns the nose towards the image's
    left, positive pitch turns it down, positive roll turns the face clockwise in the image."""

    presentation: str = "live"  # PRESENTATION_KINDS
    identity: int = 0  # simulator.face.heads: 0 .. IDENTITIES - 1
    distance_m: float = 0.5  # of the face centre (between eyes and mouth), along the IR camera's axis
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    offset_m: tuple[float, float] = (0.0, 0.0)  # x, y of the face centre from the IR camera's axis
    light: Light = Light()
    bend: float = 0.0  # photo only: the paper's curvature (1/m); + bows the middle towards the camera
    others: tuple[FaceScene, ...] = ()  # more live heads in view (the "two faces" case)
    face_id: str = "sandbox-buyer-1"  # whom the unit's face-pay app recognises


@dataclass(frozen=True)
class LightRange:
    """Where ``random_face_scene`` draws a Light's fields from."""

    rgb_level: Intervals
    azimuth_deg: Intervals
    elevation_deg: Intervals
    ambient_ir: Intervals
    warmth: Intervals


LIGHT_TRAIN = LightRange(
    rgb_level=((0.6, 1.25),),
    azimuth_deg=((-30.0, 30.0),),
    elevation_deg=((5.0, 35.0),),
    ambient_ir=((0.0, 0.15),),
    warmth=((-0.6, 0.6),),
)
LIGHT_HELD_OUT = LightRange(  # every field outside LIGHT_TRAIN's ranges: dimmer or brighter, from the side, sunnier
    rgb_level=((0.35, 0.6), (1.25, 1.6)),
    azimuth_deg=((-60.0, -30.0), (30.0, 60.0)),
    elevation_deg=((35.0, 55.0),),
    ambient_ir=((0.15, 0.35),),
    warmth=((-1.0, -0.6), (0.6, 1.0)),
)
LIGHTS = {"train": LIGHT_TRAIN, "held-out": LIGHT_HELD_OUT}
MAX_YAW_DEG, MAX_PITCH_DEG, MAX_ROLL_DEG = 20.0, 15.0, 10.0
OFFSET_SHARE = (0.12, 0.08)  # the face centre's x, y offset at most this share of the distance: in both views
MAX_RANDOM_BEND = 2.5  # 1/m: a gently bent print sags about 6 mm at the face's cheeks


def draw(rng: np.random.Generator, intervals: Intervals) -> float:
    """A value uniform over the union of ``intervals``."""
    lengths = np.array([high - low for low, high in intervals], dtype=np.float64)
    i = int(rng.choice(len(intervals), p=lengths / lengths.sum())) if len(intervals) > 1 else 0
    low, high = intervals[i]
    return float(rng.uniform(low, high))


def random_light(rng: np.random.Generator, light: str | LightRange = "train") -> Light:
    """A Light drawn from a range (``"train"``, ``"held-out"`` or a LightRange)."""
    ranges = LIGHTS[light] if isinstance(light, str) else light
    return Light(
        rgb_level=draw(rng, ranges.rgb_level),
        direction_deg=(draw(rng, ranges.azimuth_deg), draw(rng, ranges.elevation_deg)),
        ambient_ir=draw(rng, ranges.ambient_ir),
        warmth=draw(rng, ranges.warmth),
    )


def random_face_scene(
    rng: np.random.Generator,
    presentation: str,
    identities: Sequence[int],
    *,
    distance_m: tuple[float, float] | Intervals = (0.35, 0.8),
    light: str | LightRange = "train",
) -> FaceScene:
    """A varied presentation: an identity of ``identities``, a distance in ``distance_m`` (an interval or a tuple
    of intervals), |yaw| <= 20, |pitch| <= 15, |roll| <= 10 degrees, off-centre within both views, and a light
    drawn from ``light``; a photo is bent a little half the time."""
    intervals: Intervals = (distance_m,) if isinstance(distance_m[0], int | float) else distance_m
    distance = draw(rng, intervals)
    sx, sy = OFFSET_SHARE
    return FaceScene(
        presentation=presentation,
        identity=int(rng.choice(np.asarray(identities))),
        distance_m=distance,
        yaw_deg=float(rng.uniform(-MAX_YAW_DEG, MAX_YAW_DEG)),
        pitch_deg=float(rng.uniform(-MAX_PITCH_DEG, MAX_PITCH_DEG)),
        roll_deg=float(rng.uniform(-MAX_ROLL_DEG, MAX_ROLL_DEG)),
        offset_m=(float(rng.uniform(-sx, sx) * distance), float(rng.uniform(-sy, sy) * distance)),
        light=random_light(rng, light),
        bend=float(rng.uniform(0.0, MAX_RANDOM_BEND)) if presentation == "photo" and rng.random() < 0.5 else 0.0,
    )
