"""A simulated wearer following a cued protocol, written to BDF+ as ``emgd record`` would.

This module owns the synthetic ground truth for the BDF+ reader and for training from
recordings: a protocol of cues (:func:`cued_protocol`), a wearer who reacts to each cue
start and end :data:`DEFAULT_REACTION_S` late and moves with a minimum-jerk ramp of
:data:`DEFAULT_RISE_S` (:func:`wearer_trajectory`), EMG rendered for that movement by the
synthetic sEMG model, and a session file written through the real
:class:`~emgd.data.bdf_writer.BdfSessionWriter` with the cue annotations at the cue times
(not the movement times), optionally with lost frames (:func:`write_cued_session`). It
returns the truth the file does not hold: the true movement start of every cue and the
true angles of every frame. It must not read files or decide how labels are aligned.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emgd.data.bdf_annotations import MARKER_END, MARKER_START
from emgd.data.bdf_writer import BdfSessionWriter, PhysicalRange, SessionHeader, default_labels
from emgd.errors import ConfigError
from emgd.poses import GESTURE_NAMES, REST, pose_angles_deg, proportional_target_deg
from emgd.sim.synthetic_emg import DEFAULT_MAINS_HZ, DEFAULT_N_CHANNELS, SyntheticEmg
from emgd.sim.trajectory import KeyframeTrajectory

FloatArray = npt.NDArray[np.float64]

DEFAULT_SAMPLE_RATE_HZ = 1000.0
DEFAULT_CUE_S = 3.0
DEFAULT_REST_S = 3.0
DEFAULT_LEAD_IN_S = 2.0
DEFAULT_REACTION_S: tuple[float, float] = (0.2, 0.5)
DEFAULT_RISE_S: tuple[float, float] = (0.3, 0.6)
DEFAULT_EFFORTS: tuple[float, ...] = (0.4, 0.7, 1.0)
ADS1299_GAIN = 24
ADS1299_VREF_V = 4.5
WRITE_BLOCK_S = 0.1  # frames reach the writer in blocks like the acquisition consumer's
START_TIME = dt.datetime(2026, 12, 7, 9, 0, 0)


@dataclass(frozen=True)
class CueStep:
    """One cue of a protocol: hold ``gesture`` at ``effort`` for ``hold_s``, then rest."""

    gesture: str
    effort: float
    rep: int
    hold_s: float = DEFAULT_CUE_S
    rest_after_s: float = DEFAULT_REST_S


@dataclass(frozen=True)
class CueTruth:
    """What the simulated wearer really did for one cue (seconds from the file start)."""

    gesture: str
    effort: float
    rep: int
    cue_start_s: float
    cue_end_s: float
    move_start_s: float
    rise_s: float
    release_start_s: float


@dataclass(frozen=True)
class CuedSession:
    """A written session file and its truth.

    Attributes
    ----------
    path:
        The BDF+ file.
    sample_rate_hz:
        Its rate.
    cues:
        One :class:`CueTruth` per cue, in time order.
    angles_deg:
        Shape ``(n_frames, 5)``: true angles of every frame in the file (lost frames are not
        in the file, so not here either).
    file_times_s:
        Shape ``(n_frames,)``: the wearer's time of every frame in the file; after a gap it
        runs ahead of the file's sample index by the lost frames.
    frames_lost:
        Frames left out as lost.
    """

    path: Path
    sample_rate_hz: float
    cues: tuple[CueTruth, ...]
    angles_deg: FloatArray
    file_times_s: FloatArray
    frames_lost: int


def cued_protocol(
    reps: int,
    gestures: Sequence[str] = GESTURE_NAMES,
    efforts: Sequence[float] = DEFAULT_EFFORTS,
    *,
    hold_s: float = DEFAULT_CUE_S,
    rest_s: float = DEFAULT_REST_S,
) -> list[CueStep]:
    """Every gesture once per rep (reps numbered from 1), efforts cycling through ``efforts``."""
    if reps < 1 or not gestures or not efforts:
        raise ConfigError("cued protocol: need reps >= 1, one gesture and one effort")
    steps: list[CueStep] = []
    for rep in range(1, reps + 1):
        for i, gesture in enumerate(gestures):
            effort = float(efforts[(i + rep - 1) % len(efforts)])
            steps.append(CueStep(gesture, effort, rep, hold_s, rest_s))
    return steps


def wearer_trajectory(
    protocol: Sequence[CueStep],
    seed: int,
    *,
    session: int = 0,
    lead_in_s: float = DEFAULT_LEAD_IN_S,
    reaction_s: tuple[float, float] = DEFAULT_REACTION_S,
    rise_s: tuple[float, float] = DEFAULT_RISE_S,
) -> tuple[KeyframeTrajectory, list[CueTruth], float]:
    """The wearer's angles for a protocol: react late to each cue start and end, ramp.

    ``seed`` and ``session`` together draw the reactions and ramps.

    Returns
    -------
    (trajectory, truths, duration_s)
        The keyframe trajectory, one truth per cue, and the session length (the last
        rest included).

    Raises
    ------
    ConfigError
        If a reaction plus a ramp does not fit inside a cue or the rest after it.
    """
    rng = np.random.default_rng([seed, 24, session])
    rest = pose_angles_deg(REST)
    times: list[float] = [0.0]
    angles: list[FloatArray] = [rest]
    truths: list[CueTruth] = []
    t = lead_in_s
    for step in protocol:
        react_on = float(rng.uniform(*reaction_s))
        react_off = float(rng.uniform(*reaction_s))
        rise = float(rng.uniform(*rise_s))
        fall = float(rng.uniform(*rise_s))
        if react_on + rise >= step.hold_s or react_off + fall >= step.rest_after_s:
            raise ConfigError(
                f"cue {step.gesture} rep {step.rep}: a reaction of {react_on:.2f} s plus a ramp "
                f"of {rise:.2f} s must fit in the cue ({step.hold_s:g} s) and the rest after it"
            )
        target = proportional_target_deg(step.gesture, step.effort)
        cue_end = t + step.hold_s
        move = t + react_on
        release = cue_end + react_off
        times += [move, move + rise, release, release + fall]
        angles += [rest, target, target, rest]
        truths.append(
            CueTruth(step.gesture, step.effort, step.rep, t, cue_end, move, rise, release)
        )
        t = cue_end + step.rest_after_s
    times.append(t)
    angles.append(rest)
    return KeyframeTrajectory(times, np.array(angles)), truths, t


def write_cued_session(
    path: Path,
    protocol: Sequence[CueStep],
    *,
    seed: int = 0,
    session: int = 0,
    sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ,
    n_channels: int = DEFAULT_N_CHANNELS,
    device: str = "simulated",
    participant: str = "wearer",
    lose_frames: Sequence[tuple[float, int]] = (),
    mains_hz: float = DEFAULT_MAINS_HZ,
    artefact_rate_hz: float = 0.0,
    reaction_s: tuple[float, float] = DEFAULT_REACTION_S,
    rise_s: tuple[float, float] = DEFAULT_RISE_S,
) -> CuedSession:
    """Simulate the wearer following ``protocol`` and write the session to ``path``.

    Parameters
    ----------
    path:
        A new file.
    protocol:
        The cues in order (:func:`cued_protocol`).
    seed:
        Seeds the wearer (forearm, electrodes, motor units) and the EMG.
    session:
        Another session of the same wearer: other reactions and ramps.
    lose_frames:
        ``(time_s, n)`` pairs: ``n`` frames starting at wearer time ``time_s`` are not
        written (the writer records a ``gap``).
    mains_hz, artefact_rate_hz:
        Passed to :class:`~emgd.sim.synthetic_emg.SyntheticEmg`.
    reaction_s, rise_s:
        Ranges ``(lo, hi)`` of the wearer's reaction delay and ramp duration.

    Returns
    -------
    CuedSession
    """
    trajectory, truths, duration_s = wearer_trajectory(
        protocol, seed, session=session, reaction_s=reaction_s, rise_s=rise_s
    )
    fs = float(sample_rate_hz)
    n_total = math.ceil(duration_s * fs)
    source = SyntheticEmg(
        trajectory,
        n_channels=n_channels,
        seed=seed,
        mains_hz=mains_hz,
        artefact_rate_hz=artefact_rate_hz,
    )
    emg_uv, angles = source.generate_with_targets(n_total, fs)
    keep = np.ones(n_total, dtype=bool)
    for time_s, n in lose_frames:
        first = round(time_s * fs)
        keep[first : first + n] = False
    header = SessionHeader(
        channel_labels=default_labels(n_channels),
        sample_rate_hz=fs,
        device=device,
        ranges=PhysicalRange.ads1299(ADS1299_GAIN, ADS1299_VREF_V),
        start=START_TIME,
        participant=participant,
        session=path.stem,
        config={"gain": ADS1299_GAIN, "vref_v": ADS1299_VREF_V, "protocol": "cued"},
    )
    block = max(1, round(WRITE_BLOCK_S * fs))
    with BdfSessionWriter(path, header, sync=False) as writer:
        cue_events = sorted(
            [(c.cue_start_s, c, MARKER_START) for c in truths]
            + [(c.cue_end_s, c, MARKER_END) for c in truths],
            key=lambda item: item[0],
        )
        frames_lost = 0
        for first in range(0, n_total, block):
            last = min(n_total, first + block)
            # Cues are annotated at the file time of the frame they fall on.
            while cue_events and round(cue_events[0][0] * fs) < last:
                onset_s, cue, marker = cue_events.pop(0)
                file_s = (round(onset_s * fs) - frames_lost) / fs
                writer.cue(max(file_s, 0.0), cue.gesture, cue.effort, cue.rep, marker)
            index = np.flatnonzero(keep[first:last]) + first
            frames_lost += (last - first) - index.size
            for run in np.split(index, np.flatnonzero(np.diff(index) != 1) + 1):
                if run.size:
                    writer.write_frames(emg_uv[run], int(run[0]))
    kept = np.flatnonzero(keep)
    return CuedSession(
        path=path,
        sample_rate_hz=fs,
        cues=tuple(truths),
        angles_deg=np.clip(angles[kept], 0.0, 180.0),
        file_times_s=kept / fs,
        frames_lost=int(n_total - kept.size),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emgd.data.cued_session DIR``: write synthetic wearer sessions to ``DIR``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=7, help="the wearer (default 7)")
    parser.add_argument("--files", type=int, default=2, help="sessions (default 2)")
    parser.add_argument("--reps", type=int, default=4, help="reps of each gesture per session")
    parser.add_argument("--rate", type=float, default=DEFAULT_SAMPLE_RATE_HZ, help="Hz")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    for k in range(args.files):
        path = args.folder / f"wearer{args.seed}_s{k + 1}.bdf"
        # One wearer (forearm seed) per folder; each session its own reactions and ramps.
        session = write_cued_session(
            path,
            cued_protocol(args.reps),
            seed=args.seed,
            session=k,
            sample_rate_hz=args.rate,
            participant=f"wearer{args.seed}",
        )
        print(f"{path}: {session.angles_deg.shape[0] / args.rate:g} s, {len(session.cues)} cues")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
