"""The inference pipeline: filter → normaliser → windower → model, for one continuous stream.

This module is the one place that composes the signal chain with a model, so offline
evaluation (:mod:`emgd.offline.evaluate`), training code and the daemon run identical arithmetic.
:class:`InferencePipeline` takes raw blocks in µV, filters them with the contract's
:class:`~emgd.dsp.filters.StreamingFilter` (started with ``reset(None)``), applies the wearer's
:class:`~emgd.dsp.normalise.Normaliser`, cuts windows every hop with a
:class:`~emgd.dsp.window.Windower` and asks a runner (anything with ``infer(window,
history_deg)``, e.g. :class:`~emgd.model.runtime.OnnxModel`) for five angles per hop. The
history inputs are the previous *commanded* angles, which only the caller knows (the daemon's
safety layer may limit or hold what the model asked for), so the caller decides at every hop
what was commanded; :func:`replay_closed_loop` is the offline loop that commands the model's
own clamped outputs. Values in, values out: no clock, no threads, no files, no datasets
(the protocol's stream rules live in :mod:`emgd.offline.stream`), and no torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from emgd.dsp.decimate import StreamingDecimator, decimation_factor
from emgd.dsp.filters import StreamingFilter
from emgd.dsp.normalise import Normaliser
from emgd.dsp.window import Window, Windower, WindowSpec
from emgd.errors import ConfigError, ModelError
from emgd.model.contract import PreprocessContract
from emgd.poses import REST, pose_angles_deg

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_HISTORY = 2  # A(n) and A(n−1)
REST_ANGLES_DEG: tuple[float, ...] = tuple(float(a) for a in pose_angles_deg(REST))
DEFAULT_REPLAY_BLOCK_S = 1.0  # block length of the offline replay (any length gives the same)


class Runner(Protocol):
    """Anything that turns one window and the commanded history into angles."""

    def infer(self, window: npt.NDArray[Any], history_deg: FloatArray) -> FloatArray:
        """``window`` ``(W, C)``, ``history_deg`` ``(history·5,)`` → angles ``(5,)``."""
        ...


class Hop(NamedTuple):
    """One inference.

    Attributes
    ----------
    newest_index:
        Stream index (from 0 at the first sample fed) of the window's newest sample.
    angles_deg:
        Shape ``(5,)``: the model's raw output, degrees.
    history_deg:
        Shape ``(history·5,)``: the commanded history the model was given, newest first.
    """

    newest_index: int
    angles_deg: FloatArray
    history_deg: FloatArray


# What was commanded at a hop, decided by the caller from the hop (the daemon's safety layer).
Commander = Callable[[Hop], npt.ArrayLike]


# --------------------------------------------------------------------------- the pipeline


def _angles(name: str, value: npt.ArrayLike, n: int) -> FloatArray:
    a = np.array(value, dtype=np.float64, copy=True)
    if a.shape != (n,):
        raise ModelError(f"{name} shape {a.shape}: expected ({n},)")
    if not np.all(np.isfinite(a)):
        raise ModelError(f"{name} holds non-finite values: {a.tolist()}")
    return a


class InferencePipeline:
    """Filter, normalise, window and run a model over one stream fed in blocks.

    Parameters
    ----------
    contract:
        The model's preprocessing contract (rate, channels, filter, window, hop, range).
    normaliser:
        The wearer's calibration, ``contract.n_channels`` channels.
    runner:
        ``infer(window (W, C) float32, history_deg (history·5,)) -> (5,)``.
    history:
        Number of commanded angle vectors the model sees (``A(n)``, ``A(n−1)``…).
    max_block_frames:
        Largest block windowed without a copy (default: one window).
    input_rate_hz:
        Rate of the blocks fed in (default: the model's). A whole multiple of the model's
        rate is decimated (:class:`~emgd.dsp.decimate.StreamingDecimator`) before the
        filter; stream indices count samples at the model's rate.

    Notes
    -----
    The commanded history starts at the rest pose (30°×5 for every vector) and after
    :meth:`reset`. Windows are float32 views, valid until the next block.
    """

    def __init__(
        self,
        contract: PreprocessContract,
        normaliser: Normaliser,
        runner: Runner,
        *,
        history: int = DEFAULT_HISTORY,
        max_block_frames: int | None = None,
        input_rate_hz: float | None = None,
    ) -> None:
        if normaliser.n_channels != contract.n_channels:
            raise ModelError(
                f"normaliser has {normaliser.n_channels} channels, the model expects "
                f"{contract.n_channels}"
            )
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ConfigError(f"InferencePipeline history = {history!r}: must be an int >= 0")
        self._contract = contract
        self._normaliser = normaliser
        self._runner = runner
        fs_hz = contract.sample_rate_hz
        self._window_spec = WindowSpec(
            window_s=contract.window_samples / fs_hz, hop_s=contract.hop_samples / fs_hz
        )
        self._max_block_frames = max_block_frames
        factor = (
            1
            if input_rate_hz is None
            else decimation_factor(input_rate_hz, fs_hz, "InferencePipeline input rate")
        )
        self._decimator = StreamingDecimator(factor, contract.n_channels)
        self._filter = StreamingFilter(contract.filter_spec, fs_hz, contract.n_channels)
        self._windower = self._new_windower()
        self._n_outputs = len(contract.finger_order)
        self._rest_deg = self.clamp(np.resize(np.asarray(REST_ANGLES_DEG), self._n_outputs))
        self._history_deg: FloatArray = np.tile(self._rest_deg, history)
        self.last_filter_ns = 0
        self.last_window_ns = 0
        self.reset()

    def _new_windower(self) -> Windower:
        windower = Windower(
            self._window_spec,
            self._contract.sample_rate_hz,
            self._contract.n_channels,
            max_block_frames=self._max_block_frames,
        )
        if (windower.n_window, windower.n_hop) != (
            self._contract.window_samples,
            self._contract.hop_samples,
        ):
            raise ModelError(
                f"windower gives {windower.n_window}/{windower.n_hop} samples, the contract "
                f"says {self._contract.window_samples}/{self._contract.hop_samples}"
            )
        return windower

    # -- state ---------------------------------------------------------------------------

    @property
    def contract(self) -> PreprocessContract:
        return self._contract

    @property
    def normaliser(self) -> Normaliser:
        return self._normaliser

    def set_normaliser(self, normaliser: Normaliser) -> None:
        """Swap the wearer's calibration for the following blocks (filter state kept).

        Samples already in the current window stay normalised with the previous
        calibration until the window has moved past them (one window length).

        Raises
        ------
        ModelError
            When ``normaliser`` has another number of channels than the contract.
        """
        if normaliser.n_channels != self._contract.n_channels:
            raise ModelError(
                f"normaliser has {normaliser.n_channels} channels, the model expects "
                f"{self._contract.n_channels}"
            )
        self._normaliser = normaliser

    @property
    def frames_seen(self) -> int:
        """Samples (at the model's rate) since the last reset: the next sample's stream index."""
        return self._windower.frames_seen

    @property
    def frames_to_next_window(self) -> int:
        """Frames at the input rate still to come up to and including the one that
        completes the next window (>= 1; the decimator's phase counted)."""
        outputs = self._windower.next_newest_index() - self._windower.frames_seen + 1
        return self._decimator.inputs_to_next_output + (outputs - 1) * self._decimator.factor

    @property
    def frames_per_window_step(self) -> int:
        """Frames at the input rate between the newest samples of two windows."""
        return self._windower.n_hop * self._decimator.factor

    @property
    def history_deg(self) -> FloatArray:
        """The commanded history the next hop will see, newest vector first (a copy)."""
        return self._history_deg.copy()

    @property
    def rest_deg(self) -> FloatArray:
        """The rest pose the history starts from, shape ``(5,)`` (a copy)."""
        return self._rest_deg.copy()

    def reset(self) -> None:
        """Start a new stream: fresh filter and windows, history back at the rest pose."""
        self._decimator.reset()
        self._filter.reset(None)
        self._windower = self._new_windower()
        self._history_deg = np.tile(self._rest_deg, self._history_deg.size // self._n_outputs)

    def clamp(self, angles_deg: npt.ArrayLike) -> FloatArray:
        """Angles clipped to the contract's range (what a plain closed loop commands)."""
        lo_deg, hi_deg = self._contract.angle_range_deg
        return np.clip(np.asarray(angles_deg, dtype=np.float64), lo_deg, hi_deg)

    def command(self, angles_deg: npt.ArrayLike) -> None:
        """Record what was commanded after a hop: it becomes ``A(n)``, ``A(n)`` becomes
        ``A(n−1)``.

        Raises
        ------
        ModelError
            When the shape is not ``(5,)`` or a value is not finite.
        """
        commanded = _angles("commanded angles", angles_deg, self._n_outputs)
        if self._history_deg.size:
            self._history_deg[self._n_outputs :] = self._history_deg[: -self._n_outputs].copy()
            self._history_deg[: self._n_outputs] = commanded

    # -- running -------------------------------------------------------------------------

    def windows(self, block_uv: npt.ArrayLike) -> list[Window]:
        """Filter and normalise the next block; return the windows it completes.

        Parameters
        ----------
        block_uv:
            Shape ``(n, C)``, raw samples in µV following the previous block, at the input
            rate.

        Returns
        -------
        list of Window
            ``frames`` ``(W, C)`` float32 read-only views (valid until the next block) and
            the newest sample's stream index.
        """
        x = np.asarray(block_uv, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._contract.n_channels:
            raise ModelError(
                f"block shape {x.shape}: the model expects (n, {self._contract.n_channels})"
            )
        t0 = time.perf_counter_ns()
        if self._decimator.factor > 1:
            x = self._decimator.process(x)
        filtered = self._filter.process(x)
        self._normaliser.apply(filtered, out=filtered)
        t1 = time.perf_counter_ns()
        windows = self._windower.push(filtered)
        # Durations for the daemon's per-stage latency (instrumentation, not a clock).
        self.last_filter_ns = t1 - t0
        self.last_window_ns = time.perf_counter_ns() - t1
        return windows

    def step(self, window: npt.ArrayLike, history_deg: npt.ArrayLike, newest_index: int) -> Hop:
        """Run the model on one window with an explicit history (internal history untouched).

        Parameters
        ----------
        window:
            Shape ``(W, C)`` from :meth:`windows`.
        history_deg:
            Shape ``(history·5,)``, newest commanded vector first.
        newest_index:
            The window's newest stream index (carried into the :class:`Hop`).
        """
        history = _angles("history_deg", history_deg, self._history_deg.size)
        angles = np.asarray(self._runner.infer(np.asarray(window), history), dtype=np.float64)
        if angles.shape != (self._n_outputs,):
            raise ModelError(f"runner returned shape {angles.shape}, expected ({self._n_outputs},)")
        return Hop(newest_index, angles, history)

    def push(self, block_uv: npt.ArrayLike, commander: Commander | None = None) -> list[Hop]:
        """Feed the next block; run the model at every hop it completes, in order.

        Parameters
        ----------
        block_uv:
            Shape ``(n, C)``, raw samples in µV.
        commander:
            Called with each :class:`Hop` as soon as it is computed; returns what was
            commanded, shape ``(5,)``, which becomes the next hop's ``A(n)``. Default:
            the clamped model output (plain closed loop).

        Returns
        -------
        list of Hop
            One per window completed by this block (possibly none).
        """
        hops: list[Hop] = []
        for window in self.windows(block_uv):
            hop = self.step(window.frames, self._history_deg, window.newest_index)
            self.command(self.clamp(hop.angles_deg) if commander is None else commander(hop))
            hops.append(hop)
        return hops


class Replay(NamedTuple):
    """What a replayed stream produced.

    Attributes
    ----------
    newest_index:
        Shape ``(H,)``: each hop's newest sample index.
    angles_deg:
        Shape ``(H, 5)``: raw model outputs.
    commanded_deg:
        Shape ``(H, 5)``: what was commanded at each hop (fed back as history).
    """

    newest_index: IntArray
    angles_deg: FloatArray
    commanded_deg: FloatArray


def replay_closed_loop(
    pipeline: InferencePipeline,
    stream_uv: npt.ArrayLike,
    *,
    commander: Commander | None = None,
    block_frames: int | None = None,
) -> Replay:
    """Replay a whole stream through a (reset) pipeline, feeding back what is commanded.

    Parameters
    ----------
    pipeline:
        Reset first, so the stream starts from a fresh filter and the rest history.
    stream_uv:
        Shape ``(n, C)``, raw µV.
    commander:
        What is commanded at each hop (default: the clamped model output, i.e. the model is
        fed its own outputs exactly as the daemon would without a safety limit).
    block_frames:
        Block length of the replay (default ``DEFAULT_REPLAY_BLOCK_S``; any gives the same).

    Returns
    -------
    Replay
        Every hop whose window is complete.
    """
    x = np.asarray(stream_uv, dtype=np.float64)
    fs_hz = pipeline.contract.sample_rate_hz
    step = block_frames or max(1, round(DEFAULT_REPLAY_BLOCK_S * fs_hz))
    pipeline.reset()
    index: list[int] = []
    raw: list[FloatArray] = []
    commanded: list[FloatArray] = []
    n_out = len(pipeline.contract.finger_order)

    def record(hop: Hop) -> FloatArray:
        chosen = (
            pipeline.clamp(hop.angles_deg)
            if commander is None
            else np.asarray(commander(hop), dtype=np.float64)
        )
        index.append(hop.newest_index)
        raw.append(hop.angles_deg)
        commanded.append(chosen)
        return chosen

    for start in range(0, x.shape[0], step):
        pipeline.push(x[start : start + step], record)
    if not index:
        empty = np.empty((0, n_out))
        return Replay(np.empty(0, dtype=np.int64), empty, empty.copy())
    return Replay(np.asarray(index, dtype=np.int64), np.stack(raw), np.stack(commanded))
