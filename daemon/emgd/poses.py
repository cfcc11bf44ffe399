"""The project's gesture → finger-angle targets, and the proportional-effort target.

This module owns the fixed convention of ``datasets/README.md``: angles are degrees of
finger flexion (0 = fully open, 180 = fully flexed) in the order thumb, index, middle, ring,
little, one target per pose, and the target at effort ``p`` is ``R + p·(G − R)`` with ``R``
the relaxed pose. It is plain data and tiny pure functions, shared by the simulator and the
training/evaluation code; it must not read files or hold state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")
N_FINGERS = len(FINGERS)

ANGLE_MIN_DEG = 0.0
ANGLE_MAX_DEG = 180.0

REST = "rest"
OPEN = "open"
POWER = "power"
CHUCK = "chuck"
PINCH = "pinch"

POSE_NAMES: tuple[str, ...] = (REST, OPEN, POWER, CHUCK, PINCH)
GESTURE_NAMES: tuple[str, ...] = (OPEN, POWER, CHUCK, PINCH)

# Finger order thumb, index, middle, ring, little (datasets/README.md, "Finger-angle targets").
POSE_ANGLES_DEG: Mapping[str, tuple[float, float, float, float, float]] = MappingProxyType(
    {
        REST: (30.0, 30.0, 30.0, 30.0, 30.0),
        OPEN: (0.0, 0.0, 0.0, 0.0, 0.0),
        POWER: (180.0, 180.0, 180.0, 180.0, 180.0),
        CHUCK: (110.0, 110.0, 110.0, 180.0, 180.0),
        PINCH: (110.0, 110.0, 30.0, 30.0, 30.0),
    }
)

# 3DC class index -> pose (classes 0-6 are wrist movements or no motion: the hand is relaxed).
POSE_OF_3DC_CLASS: Mapping[int, str] = MappingProxyType(
    {0: REST, 1: REST, 2: REST, 3: REST, 4: REST, 5: REST, 6: REST}
    | {7: POWER, 8: OPEN, 9: CHUCK, 10: PINCH}
)

# ContractionIntensity class -> pose, and effort level name -> p (Ramp rises 0.2 -> 0.8).
POSE_OF_CONTRACTION_INTENSITY_CLASS: Mapping[str, str] = MappingProxyType(
    {"C1": REST, "C6": CHUCK, "C7": OPEN}
)
EFFORT_OF_CONTRACTION_INTENSITY_LEVEL: Mapping[str, float] = MappingProxyType(
    {"20P": 0.2, "30P": 0.3, "40P": 0.4, "50P": 0.5, "60P": 0.6, "70P": 0.7, "80P": 0.8}
    | {"MVC": 1.0, "Light": 0.3, "Medium": 0.5, "Hard": 0.7}
)
RAMP_EFFORT_RANGE: tuple[float, float] = (0.2, 0.8)


def pose_angles_deg(pose: str) -> FloatArray:
    """Return the full-effort target of a pose.

    Parameters
    ----------
    pose:
        One of :data:`POSE_NAMES`.

    Returns
    -------
    numpy.ndarray
        Shape ``(5,)``, finger flexion in degrees (a fresh array the caller may modify).

    Raises
    ------
    ConfigError
        If the pose name is unknown.
    """
    try:
        angles = POSE_ANGLES_DEG[pose]
    except KeyError:
        raise ConfigError(f"unknown pose {pose!r}; known poses: {', '.join(POSE_NAMES)}") from None
    return np.array(angles, dtype=np.float64)


def proportional_target_deg(pose: str, effort: float) -> FloatArray:
    """Return the target at effort ``p``: ``R + p·(G − R)`` (``R`` the rest pose).

    Parameters
    ----------
    pose:
        One of :data:`POSE_NAMES` (``"rest"`` gives ``R`` at any effort).
    effort:
        ``p`` in ``[0, 1]`` (1 = maximum voluntary contraction).

    Returns
    -------
    numpy.ndarray
        Shape ``(5,)``, finger flexion in degrees.

    Raises
    ------
    ConfigError
        If the pose is unknown or the effort is not a finite number in ``[0, 1]``.
    """
    if not (math.isfinite(effort) and 0.0 <= effort <= 1.0):
        raise ConfigError(f"effort for pose {pose!r} must be in [0, 1], got {effort!r}")
    goal_deg = pose_angles_deg(pose)
    rest_deg = pose_angles_deg(REST)
    return rest_deg + effort * (goal_deg - rest_deg)


def proportional_targets_deg(pose: str, efforts: npt.ArrayLike) -> FloatArray:
    """Vectorised :func:`proportional_target_deg` for a series of efforts.

    Parameters
    ----------
    pose:
        One of :data:`POSE_NAMES`.
    efforts:
        Shape ``(n,)``, each in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 5)``, finger flexion in degrees.
    """
    p = np.asarray(efforts, dtype=np.float64).reshape(-1)
    bad = ~(np.isfinite(p) & (p >= 0.0) & (p <= 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"effort for pose {pose!r} must be in [0, 1], got {float(p[first])!r} at index {first}"
        )
    goal_deg = pose_angles_deg(pose)
    rest_deg = pose_angles_deg(REST)
    return rest_deg[None, :] + p[:, None] * (goal_deg - rest_deg)[None, :]
