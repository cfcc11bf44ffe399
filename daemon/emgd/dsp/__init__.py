"""The streaming signal chain shared by the daemon, training and evaluation.

Filter (:mod:`emgd.dsp.filters`), calibration normalisation (:mod:`emgd.dsp.normalise`),
ring buffer (:mod:`emgd.dsp.ring`) and windowing (:mod:`emgd.dsp.window`). Each stage holds
only its own state and never calls another; the pipeline composes them. Nothing here reads
the clock, touches hardware or files, or loops over samples in Python.
"""

from __future__ import annotations

from emgd.dsp.filters import (
    FilterSpec,
    StreamingFilter,
    design_sos,
    effective_band_hz,
    notch_frequencies_hz,
)
from emgd.dsp.normalise import (
    Calibration,
    Normaliser,
    compute_calibration,
    moving_rms,
    railed_mask_from_bits,
)
from emgd.dsp.ring import RingBuffer, RingRead
from emgd.dsp.window import Window, Windower, WindowSpec, seconds_to_samples, sliding_windows

__all__ = [
    "Calibration",
    "FilterSpec",
    "Normaliser",
    "RingBuffer",
    "RingRead",
    "StreamingFilter",
    "Window",
    "WindowSpec",
    "Windower",
    "compute_calibration",
    "design_sos",
    "effective_band_hz",
    "moving_rms",
    "notch_frequencies_hz",
    "railed_mask_from_bits",
    "seconds_to_samples",
    "sliding_windows",
]
