"""The figures shown at the end of a recording: per-channel RMS at rest and per gesture,
signal-to-noise, railed and lead-off counts, and the frames the file lacks.

This module owns :class:`SessionTally`, fed every frame of a session in the control loop's
thread with the label of the cue it belongs to: it band-passes them with its own
:class:`~emgd.dsp.filters.StreamingFilter` (the model contract's filter, so the figures
describe the EMG band, not the electrode offset) and keeps running sums per label and
channel, so the summary costs no memory per frame. It must not know files, sockets or
the protocol's timing: the caller says which frames carry which label (``None``: a frame
that counts for railed/lead-off but not for the RMS, e.g. while the wearer moves between
two cues).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.dsp.filters import FilterSpec, StreamingFilter

FloatArray = npt.NDArray[np.float64]

#: Frames of the filter's first this many seconds count for no label (its start-up).
SETTLE_S = 0.3
REST_LABEL = "rest"


def snr_db(signal_rms_uv: float, noise_rms_uv: float) -> float:
    """``20·log10(signal / noise)``; inf for a silent rest, -inf for no signal, nan for none."""
    if math.isnan(signal_rms_uv) or math.isnan(noise_rms_uv):
        return math.nan
    if noise_rms_uv == 0:
        return math.inf if signal_rms_uv > 0 else math.nan
    if signal_rms_uv == 0:
        return -math.inf
    return 20.0 * math.log10(signal_rms_uv / noise_rms_uv)


class SessionTally:
    """Running per-label, per-channel sums of a session's band-passed frames.

    Parameters
    ----------
    filter_spec:
        The band-pass (and notch) the figures are computed after.
    sample_rate_hz:
        Frame rate.
    n_channels:
        Channels per frame.
    """

    def __init__(self, filter_spec: FilterSpec, sample_rate_hz: float, n_channels: int) -> None:
        self.sample_rate_hz = float(sample_rate_hz)
        self.n_channels = n_channels
        self._filter = StreamingFilter(filter_spec, sample_rate_hz, n_channels)
        self._settle_frames = round(SETTLE_S * sample_rate_hz)
        self._seen = 0
        self._sum_sq: dict[str, FloatArray] = {}
        self._count: dict[str, int] = {}
        self.railed_frames = np.zeros(n_channels, dtype=np.int64)
        self.lead_off_frames = np.zeros(n_channels, dtype=np.int64)
        self.live_rms_uv: list[float] = [0.0] * n_channels

    def feed(
        self,
        block_uv: npt.ArrayLike,
        railed_bits: npt.ArrayLike,
        lead_off_bits: npt.ArrayLike,
        label: str | None,
    ) -> None:
        """Add one block of consecutive frames.

        Parameters
        ----------
        block_uv:
            Shape ``(n, C)``, raw µV.
        railed_bits, lead_off_bits:
            Shape ``(n,)``, per-frame bitmasks (bit c = channel c).
        label:
            ``"rest"``, a gesture name, or ``None`` (RMS not counted).
        """
        x = np.asarray(block_uv, dtype=np.float64)
        if x.shape[0] == 0:
            return
        bit = np.uint32(1) << np.arange(self.n_channels, dtype=np.uint32)
        railed = np.asarray(railed_bits, dtype=np.uint32)[:, None] & bit
        lead_off = np.asarray(lead_off_bits, dtype=np.uint32)[:, None] & bit
        self.railed_frames += np.count_nonzero(railed, axis=0)
        self.lead_off_frames += np.count_nonzero(lead_off, axis=0)
        filtered = self._filter.process(x)
        self.live_rms_uv = [float(v) for v in np.sqrt(np.mean(filtered * filtered, axis=0))]
        skip = max(0, min(filtered.shape[0], self._settle_frames - self._seen))
        self._seen += filtered.shape[0]
        kept = filtered[skip:]
        if label is None or kept.shape[0] == 0:
            return
        if label not in self._sum_sq:
            self._sum_sq[label] = np.zeros(self.n_channels)
            self._count[label] = 0
        self._sum_sq[label] += np.sum(kept * kept, axis=0)
        self._count[label] += kept.shape[0]

    def labels(self) -> list[str]:
        """Labels seen, rest first."""
        return sorted(self._count, key=lambda k: (k != REST_LABEL, k))

    def rms_uv(self, label: str) -> list[float]:
        """Per-channel RMS of one label's frames (nan when it has none)."""
        n = self._count.get(label, 0)
        if n == 0:
            return [math.nan] * self.n_channels
        return [float(v) for v in np.sqrt(self._sum_sq[label] / n)]

    def gesture_rms_uv(self) -> list[float]:
        """Per-channel RMS of every non-rest frame counted."""
        gestures = [k for k in self._count if k != REST_LABEL]
        n = sum(self._count[k] for k in gestures)
        if n == 0:
            return [math.nan] * self.n_channels
        total = sum((self._sum_sq[k] for k in gestures), np.zeros(self.n_channels))
        return [float(v) for v in np.sqrt(total / n)]

    def summary(self, channel_labels: tuple[str, ...]) -> dict[str, Any]:
        """The per-channel figures (see the module docstring) as plain JSON values."""
        labels = self.labels()
        per_label = {k: self.rms_uv(k) for k in labels}
        rest = self.rms_uv(REST_LABEL)
        effort = self.gesture_rms_uv()
        return {
            "labels": labels,
            "seconds": {k: self._count[k] / self.sample_rate_hz for k in labels},
            "channels": [
                {
                    "channel": c + 1,
                    "label": channel_labels[c],
                    "rms_uv": {k: per_label[k][c] for k in labels},
                    "snr_db": snr_db(effort[c], rest[c]),
                    "railed_frames": int(self.railed_frames[c]),
                    "lead_off_frames": int(self.lead_off_frames[c]),
                }
                for c in range(self.n_channels)
            ],
        }
