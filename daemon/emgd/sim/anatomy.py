"""One simulated wearer's forearm and electrode band: what differs between people and donnings.

This module owns drawing, from a wearer's seed on its own random stream, the quantities that
make one forearm's sEMG unlike another's even for the same finger movement: the forearm's
size, where the muscle bellies sit (angle and depth), how big each muscle is, the thickness
of the fat under the skin, where the electrode band lands (ring rotation and uneven
spacing), and each electrode's skin contact (gain and noise). A *donning* is one putting-on
of the band: the same arm, with the band a few degrees off and the contacts slightly
different. It holds numbers only; turning them into µV is :mod:`emgd.sim.synthetic_emg`'s
job, and the motor-unit pools (whose sizes are drawn per muscle from the wearer's seed) are
:mod:`emgd.sim.motor_units`'. It must not render signals or know about chips or clocks.

Where the ranges come from (rounded; the aim is a plausible spread of adults, not a cohort):

* forearm circumference a third of the way down from the elbow is about 22-29 cm in adults,
  so a radius of 35-46 mm;
* the subcutaneous fat over the forearm muscles measures a few millimetres by ultrasound in
  lean people and approaches a centimetre in others; 2-9 mm here. Fat moves every muscle
  further from the skin, so its potentials arrive wider and weaker;
* muscle bellies shift between people by roughly a centimetre around the circumference and a
  few millimetres in depth (about 12 degrees and 3 mm standard deviation here);
* muscle cross-sections differ by some tens of percent between people of similar build
  (log-normal, 30 % spread), which changes how loud each muscle is relative to the others;
* a band placed by a landmark (the ulna's ridge, say) lands within about half an electrode
  pitch either way: +-20 degrees of ring rotation; electrodes on an elastic band or placed by
  hand are a few degrees off an even spacing;
* electrode-skin contact varies with skin hydration, hair and pressure: per channel a gain
  spread of about 25 % and a noise level spread of about 40 % (log-normal);
* between donnings by the same person the band turns by a few degrees (5 degrees standard
  deviation) and each contact changes a little (10 % gain spread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

# --- ranges (see the module docstring) ------------------------------------------------------
FOREARM_RADIUS_MM_RANGE: tuple[float, float] = (35.0, 46.0)
FAT_MM_RANGE: tuple[float, float] = (2.0, 9.0)
# The muscle depths in emgd.sim.synthetic_emg.MUSCLE_POSITION are measured from the skin of an
# arm with this much fat; a wearer's own fat adds (or removes) the difference.
REFERENCE_FAT_MM = 4.0
# Depth of a typical muscle centre at the reference fat: sets how much a thicker fat layer
# weakens the signal overall (volume-conduction weight at this depth, with and without it).
REFERENCE_MUSCLE_DEPTH_MM = 10.0
MUSCLE_ANGLE_SD_DEG = 12.0
MUSCLE_DEPTH_SD_MM = 3.0
MIN_MUSCLE_DEPTH_MM = 3.0  # a muscle centre never reaches the skin
MUSCLE_SIZE_LOG_SD = 0.3
RING_ROTATION_MAX_DEG = 20.0
ELECTRODE_SPACING_SD_DEG = 4.0
SKIN_GAIN_LOG_SD = 0.25
SKIN_NOISE_LOG_SD = 0.4
DONNING_ROTATION_SD_DEG = 5.0
DONNING_GAIN_LOG_SD = 0.1
MAX_DONNING = 2**31 - 1
# Volume conduction: a source at distance d contributes 1 / (1 + (d / this)^2) of its size.
VOLUME_CONDUCTION_MM = 14.0

_STREAM_ANATOMY: Final = 6
_STREAM_DONNING: Final = 7


@dataclass(frozen=True, slots=True)
class Anatomy:
    """One wearer's forearm and band as one donning puts it on (all angles in degrees).

    Attributes
    ----------
    forearm_radius_mm:
        Radius of the (circular) forearm cross-section at the band.
    fat_mm:
        Subcutaneous fat thickness.
    muscle_angle_offset_deg, muscle_depth_offset_mm:
        Shape ``(10,)``: how far each muscle centre sits from its nominal position
        (:data:`emgd.sim.synthetic_emg.MUSCLE_POSITION`), before the fat is added.
    muscle_size:
        Shape ``(10,)``: relative size of each muscle's motor-unit potentials (1 = nominal).
    electrode_angle_deg:
        Shape ``(C,)``: where each electrode sits around the forearm (0 = dorsal midline).
    skin_gain:
        Shape ``(C,)``: each electrode's contact gain on the muscle signal (1 = nominal).
    noise_scale:
        Shape ``(C,)``: each electrode's noise level relative to the generator's noise RMS.
    """

    forearm_radius_mm: float
    fat_mm: float
    muscle_angle_offset_deg: FloatArray
    muscle_depth_offset_mm: FloatArray
    muscle_size: FloatArray
    electrode_angle_deg: FloatArray
    skin_gain: FloatArray
    noise_scale: FloatArray

    @property
    def n_channels(self) -> int:
        return int(self.electrode_angle_deg.shape[0])

    @property
    def ring_rotation_deg(self) -> float:
        """Mean offset of the electrodes from an even ring starting at the dorsal midline."""
        pitch_deg = 360.0 / self.n_channels
        nominal = pitch_deg * np.arange(self.n_channels)
        return float(np.mean(self.electrode_angle_deg - nominal))

    def muscle_depth_mm(self, nominal_depth_mm: FloatArray) -> FloatArray:
        """Depth below the skin of each muscle centre, given the nominal depths ``(10,)``."""
        depth = nominal_depth_mm + self.muscle_depth_offset_mm + (self.fat_mm - REFERENCE_FAT_MM)
        out: FloatArray = np.clip(
            depth, MIN_MUSCLE_DEPTH_MM, self.forearm_radius_mm - MIN_MUSCLE_DEPTH_MM
        )
        return out

    @property
    def fat_gain(self) -> float:
        """Overall amplitude relative to an arm with the reference fat layer (< 1 if fatter)."""

        def weight(depth_mm: float) -> float:
            return 1.0 / (1.0 + (depth_mm / VOLUME_CONDUCTION_MM) ** 2)

        shifted = REFERENCE_MUSCLE_DEPTH_MM + self.fat_mm - REFERENCE_FAT_MM
        return weight(shifted) / weight(REFERENCE_MUSCLE_DEPTH_MM)


def draw_anatomy(seed: int, n_channels: int, n_muscles: int, *, donning: int = 0) -> Anatomy:
    """The anatomy of wearer ``seed`` with the band put on for the ``donning``-th time.

    The arm (radius, fat, muscles, where the band usually lands, the contacts) comes from the
    wearer's own random stream, so it is the same whatever else is drawn; donning 0 is that
    usual placement, and every other donning turns the band and changes the contacts a little
    on a stream of its own.

    Parameters
    ----------
    seed:
        The wearer (a non-negative integer).
    n_channels:
        Electrodes on the band.
    n_muscles:
        Muscles in the forearm model.
    donning:
        Which putting-on of the band (``>= 0``).

    Raises
    ------
    ConfigError
        If ``donning`` is not an integer in ``[0, 2**31 - 1]``.
    """
    if (
        isinstance(donning, bool)
        or not isinstance(donning, int)
        or not (0 <= donning <= MAX_DONNING)
    ):
        raise ConfigError(
            f"anatomy: donning must be an integer in [0, {MAX_DONNING}], got {donning!r}"
        )
    rng = np.random.default_rng([seed, _STREAM_ANATOMY])
    radius_mm = float(rng.uniform(*FOREARM_RADIUS_MM_RANGE))
    fat_mm = float(rng.uniform(*FAT_MM_RANGE))
    angle_offset = MUSCLE_ANGLE_SD_DEG * rng.standard_normal(n_muscles)
    depth_offset = MUSCLE_DEPTH_SD_MM * rng.standard_normal(n_muscles)
    size = np.exp(MUSCLE_SIZE_LOG_SD * rng.standard_normal(n_muscles))
    rotation_deg = float(rng.uniform(-RING_ROTATION_MAX_DEG, RING_ROTATION_MAX_DEG))
    spacing_deg = ELECTRODE_SPACING_SD_DEG * rng.standard_normal(n_channels)
    skin_gain = np.exp(SKIN_GAIN_LOG_SD * rng.standard_normal(n_channels))
    noise_scale = np.exp(SKIN_NOISE_LOG_SD * rng.standard_normal(n_channels))
    if donning > 0:
        don = np.random.default_rng([seed, _STREAM_DONNING, donning])
        rotation_deg += float(DONNING_ROTATION_SD_DEG * don.standard_normal())
        skin_gain = skin_gain * np.exp(DONNING_GAIN_LOG_SD * don.standard_normal(n_channels))
    pitch_deg = 360.0 / n_channels
    electrode_deg = rotation_deg + pitch_deg * np.arange(n_channels) + spacing_deg
    return Anatomy(
        forearm_radius_mm=radius_mm,
        fat_mm=fat_mm,
        muscle_angle_offset_deg=angle_offset,
        muscle_depth_offset_mm=depth_offset,
        muscle_size=size,
        electrode_angle_deg=electrode_deg,
        skin_gain=skin_gain,
        noise_scale=noise_scale,
    )
