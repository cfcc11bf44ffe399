"""What the control loop hands to Lab Streaming Layer each hop, and the markers it derives.

:class:`LslBridge` is the daemon's one object for LSL. Per hop the loop calls
:meth:`~LslBridge.on_frames` with the frames it took from the ring (stamped by their
sample index and DRDY times through :class:`~emgd.service.lsl_time.SampleClock`, never by
arrival) and :meth:`~LslBridge.on_hop` with the angles it commanded (stamped at the
servo write); the bridge turns safety-state and fault changes into markers, and
:meth:`~LslBridge.cue` adds the cues of ``emgd record`` and ``emgd test``. Every call
copies what it needs into a :class:`~emgd.service.lsl_publisher.Chunk` and offers it to
the publisher's bounded queue: none of them waits.

This module owns the stamping and the marker texts; the layouts and pylsl live in
:mod:`emgd.service.lsl_outlets`, the queue and thread in :mod:`emgd.service.lsl_publisher`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.config import Config
from emgd.service import lsl_outlets
from emgd.service.lsl_outlets import (
    ANGLES_STREAM,
    EMG_STREAM,
    MARKERS_STREAM,
    StreamSpec,
)
from emgd.service.lsl_publisher import Chunk, ChunkPublisher, Outlet
from emgd.service.lsl_time import LslClockMap, SampleClock

log = logging.getLogger("emgd.lsl")

OutletFactory = Callable[[StreamSpec], Outlet]
#: A cued effort is re-marked when it moved by this much (ramps change it every hop).
CUE_EFFORT_STEP = 0.1


class LslBridge:
    """Stamps and queues the daemon's EMG, angles and markers for the LSL outlets.

    Parameters
    ----------
    specs:
        The EMG, angles and markers streams (:func:`~emgd.service.lsl_outlets.stream_specs`).
    outlets:
        Stream key → outlet (pylsl's, or a test's).
    sample_rate_hz:
        The ADC's nominal rate.
    clock_map:
        Monotonic ns → LSL seconds.
    capacity_chunks:
        The publisher queue's length.
    dejitter:
        Fit the sample clock through the DRDY times (else each frame's own time).
    """

    def __init__(
        self,
        specs: Sequence[StreamSpec],
        outlets: Mapping[str, Outlet],
        *,
        sample_rate_hz: float,
        clock_map: LslClockMap,
        capacity_chunks: int,
        dejitter: bool = True,
    ) -> None:
        self.specs = tuple(specs)
        self.clock_map = clock_map
        self.sample_clock = SampleClock(sample_rate_hz, dejitter=dejitter)
        self.publisher = ChunkPublisher(outlets, capacity_chunks)
        self._n_angles = next(s.n_channels for s in self.specs if s.key == ANGLES_STREAM)
        self._state: str | None = None
        self._faults: frozenset[str] = frozenset()
        self._cued: dict[str, tuple[str, float]] = {}
        self.publisher.start()

    # ------------------------------------------------------------------ from the loop
    def on_frames(
        self,
        index: npt.NDArray[np.int64],
        drdy_ns: npt.NDArray[np.int64],
        emg_uv: npt.NDArray[np.float32],
    ) -> None:
        """Queue one batch of frames ((n,), (n,), (n, channels)) for the EMG outlet."""
        if index.shape[0] == 0:
            return
        stamps = self.clock_map.to_lsl_s(self.sample_clock.stamps_ns(index, drdy_ns))
        chunk = Chunk(EMG_STREAM, np.array(emg_uv, dtype=np.float32), stamps)
        self.publisher.offer(chunk, wake=False)  # on_hop wakes the publisher

    def on_hop(
        self,
        t_ns: int,
        commanded_deg: npt.ArrayLike,
        model_deg: npt.ArrayLike,
        state: str,
        faults: Iterable[str],
    ) -> None:
        """Queue the hop's angles (stamped ``t_ns``, the servo write) and any state or
        fault change as markers, then wake the publisher: the loop calls this after the
        servo write, so the publisher's pushes fall in the loop's idle time."""
        row = np.concatenate(
            [np.asarray(commanded_deg, np.float32), np.asarray(model_deg, np.float32)]
        )
        if row.shape != (self._n_angles,):
            raise ValueError(f"LSL angles: {row.shape[0]} values, the outlet has {self._n_angles}")
        stamp = np.array([self.clock_map.scalar_to_lsl_s(t_ns)])
        self.publisher.offer(Chunk(ANGLES_STREAM, row[np.newaxis, :], stamp), wake=False)
        texts = []
        if state != self._state:
            texts.append(
                f"state {state}" if self._state is None else f"state {state} (was {self._state})"
            )
            self._state = state
        now = frozenset(faults)
        texts += [f"fault {name}" for name in sorted(now - self._faults)]
        texts += [f"fault cleared {name}" for name in sorted(self._faults - now)]
        self._faults = now
        for text in texts:
            self.marker(t_ns, text, wake=False)
        self.publisher.wake()

    def cue(self, source: str, t_ns: int, pose: str, effort: float | None) -> None:
        """A cue of ``source`` (record, test): marked when the pose changes or the effort
        moves by CUE_EFFORT_STEP (None: the whole pose, no effort)."""
        level = 1.0 if effort is None else float(effort)
        last = self._cued.get(source)
        if last is not None and last[0] == pose and abs(last[1] - level) < CUE_EFFORT_STEP:
            return
        self._cued[source] = (pose, level)
        text = f"cue {source} {pose}" + ("" if effort is None else f" effort {level:.2f}")
        self.marker(t_ns, text, wake=False)  # cues come mid-hop: on_hop wakes

    def marker(self, t_ns: int, text: str, *, wake: bool = True) -> None:
        """Queue one marker stamped ``t_ns`` (monotonic ns)."""
        stamp = np.array([self.clock_map.scalar_to_lsl_s(t_ns)])
        self.publisher.offer(Chunk(MARKERS_STREAM, [[text]], stamp), wake=wake)

    # ------------------------------------------------------------------ status, end
    def status(self) -> dict[str, Any]:
        """For the status snapshot: streams, publisher counters, clock offset, fit."""
        return {
            "streams": {s.key: {"name": s.name, "source_id": s.source_id} for s in self.specs},
            **self.publisher.counters(),
            "clock_offset_s": self.clock_map.offset_s,
            "sample_period_ns": self.sample_clock.period_ns,
            "sample_clock_resets": self.sample_clock.resets,
        }

    def close(self, timeout_s: float = 1.0) -> None:
        """Push what is queued (bounded by ``timeout_s``) and stop the publisher."""
        self.publisher.stop(timeout_s)


def open_bridge(
    config: Config,
    board_description: str,
    hop_s: float,
    *,
    outlet_factory: OutletFactory | None = None,
    monotonic_ns: Callable[[], int] = time.monotonic_ns,
) -> LslBridge:
    """The daemon's bridge: specs from the config and board, outlets from pylsl (or
    ``outlet_factory``), LSL's clock offset measured now."""
    source_id = lsl_outlets.board_source_id(config, board_description, lsl_outlets.machine_serial())
    specs = lsl_outlets.stream_specs(config, board_description, hop_s, source_id)
    lsl_clock: Callable[[], float]
    if outlet_factory is None:
        pylsl = lsl_outlets.import_pylsl(config)

        def factory(spec: StreamSpec) -> Outlet:
            return lsl_outlets.PylslOutlet(pylsl, spec)

        outlet_factory = factory
        lsl_clock = pylsl.local_clock
    else:

        def lsl_clock() -> float:
            return monotonic_ns() / 1e9

    outlets = {spec.key: outlet_factory(spec) for spec in specs}
    clock_map = LslClockMap(monotonic_ns, lsl_clock)
    log.info(
        "LSL outlets %s (source_id %s); LSL clock = monotonic %+.6f s",
        ", ".join(repr(s.name) for s in specs),
        source_id,
        clock_map.offset_s,
    )
    return LslBridge(
        specs,
        outlets,
        sample_rate_hz=float(config.adc.sample_rate_hz),
        clock_map=clock_map,
        capacity_chunks=config.lsl.queue_chunks,
        dejitter=config.lsl.dejitter,
    )
