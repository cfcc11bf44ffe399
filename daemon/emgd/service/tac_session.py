"""The daemon side of ``emgd test``: one target-achievement control (TAC) test at a time.

This module owns the test's state machine in the control loop's thread: a protocol of
targets (the model's poses, at graded efforts when the model is proportional, times the
reps), a rest before each target, then the target for at most ``limit_s`` while it reads
the commanded angles the daemon wrote that hop; a target ends when the hand has stayed
within the tolerance for the dwell or the limit ran out, and is then scored with
:func:`emgd.offline.tac.score_target`. At every onset (target or rest) it calls the
optional ``on_cue(pose, effort)`` callback (the simulated wearer's seam; ``None`` on real
hardware). The finished report is stored beside the model: in the entry of the installed
model in the model store when the daemon runs one (``tac_test``), otherwise in
``<state_dir>/tac/<sha12>.json``. A stopped test's partial report is returned, marked
``partial``, and not stored. It also owns the ``tac.*`` socket handlers: they run in the
status server's thread and only read the published snapshot or submit a command. It must
not drive the servos or the gate: the model drives the hand during a test.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.atomic_file import write_atomic
from emgd.clock import NS_PER_S, Clock
from emgd.command_ledger import CLIENT_TIMEOUT_S, CommandLedger
from emgd.errors import InvalidParams, ModelError
from emgd.model.spec import HEAD_POSE_MIXTURE, ModelSpec
from emgd.model.store import ModelStore, sha256_of
from emgd.offline.tac import TacParams, TargetResult, score_target, summarise
from emgd.poses import GESTURE_NAMES, POSE_NAMES, REST, pose_angles_deg, proportional_target_deg

FloatArray = npt.NDArray[np.float64]
Handler = Callable[[dict[str, Any], object], object]
#: ``on_cue(pose, effort)``: what the wearer is asked to do from now on.
CueCallback = Callable[[str, float | None], None]

DEFAULT_REST_S = 3.0
MAX_REPS = 20
MAX_REST_S = 60.0
#: Efforts asked of a proportional model (graded effort or direct angles).
PROPORTIONAL_EFFORTS: tuple[float, ...] = (0.5, 1.0)
TAC_DIR_NAME = "tac"
REPORT_FORMAT = 1


@dataclass(frozen=True)
class Target:
    """One presented target: a pose, its effort (``None``: whole pose) and its angles."""

    pose: str
    effort: float | None
    angles_deg: tuple[float, ...]


def protocol_for(spec: ModelSpec, reps: int, only: Sequence[str] | None = None) -> list[Target]:
    """The targets of a test of a model: rest, then each pose the model knows (the
    distinct poses of its gestures, else the gestures of :mod:`emgd.poses`), at
    :data:`PROPORTIONAL_EFFORTS` when it is proportional, repeated ``reps`` times;
    ``only`` keeps the targets of those poses."""
    if spec.head == HEAD_POSE_MIXTURE and spec.gestures:
        poses = [p for p in dict.fromkeys(pose for _, pose in spec.gestures) if p != REST]
    else:
        poses = list(GESTURE_NAMES)
    graded = spec.head != HEAD_POSE_MIXTURE or spec.graded_effort
    one_rep = [Target(REST, None, tuple(pose_angles_deg(REST).tolist()))]
    for pose in poses:
        if graded:
            one_rep += [
                Target(pose, e, tuple(proportional_target_deg(pose, e).tolist()))
                for e in PROPORTIONAL_EFFORTS
            ]
        else:
            one_rep.append(Target(pose, None, tuple(pose_angles_deg(pose).tolist())))
    if only is not None:
        one_rep = [t for t in one_rep if t.pose in only]
    return one_rep * reps


class TacRun:
    """One test in progress (loop thread only): the targets, the current phase and trace.

    Parameters
    ----------
    targets:
        In presentation order.
    params:
        Tolerance, dwell and limit.
    rest_s:
        Rest before each target.
    start_ns:
        The daemon's clock at the start.
    on_cue:
        Called at each onset with ``(pose, effort)``; ``None`` for none.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        params: TacParams,
        rest_s: float,
        start_ns: int,
        on_cue: CueCallback | None,
    ) -> None:
        self.targets = list(targets)
        self.params = params
        self.rest_s = rest_s
        self.on_cue = on_cue
        self.index = 0
        self.phase = "rest"
        self.phase_start_ns = start_ns
        self.results: list[TargetResult] = []
        self._times_s: list[float] = []
        self._angles: list[FloatArray] = []
        self._run_start_s: float | None = None
        self.hand_deg: list[float] = []
        self._start_ns = start_ns
        self._cue(REST, None)

    @property
    def done(self) -> bool:
        return self.index >= len(self.targets)

    def _cue(self, pose: str, effort: float | None) -> None:
        if self.on_cue is not None:
            self.on_cue(pose, effort)

    def _s(self, now_ns: int) -> float:
        return (now_ns - self._start_ns) / NS_PER_S

    def feed(self, now_ns: int, commanded_deg: npt.ArrayLike) -> None:
        """One hop: the time and the angles commanded this hop."""
        if self.done:
            return
        angles = np.asarray(commanded_deg, dtype=np.float64).reshape(-1).copy()
        self.hand_deg = [float(v) for v in angles]
        elapsed_s = (now_ns - self.phase_start_ns) / NS_PER_S
        if self.phase == "rest":
            if elapsed_s < self.rest_s:
                return
            target = self.targets[self.index]
            self.phase, self.phase_start_ns = "target", now_ns
            self._times_s, self._angles, self._run_start_s = [], [], None
            self._cue(target.pose, target.effort)
            elapsed_s = 0.0
        target = self.targets[self.index]
        t_s = self._s(now_ns)
        self._times_s.append(t_s)
        self._angles.append(angles)
        inside = bool(
            np.max(np.abs(angles - np.asarray(target.angles_deg))) <= self.params.tolerance_deg
        )
        self._run_start_s = (
            (t_s if self._run_start_s is None else self._run_start_s) if inside else None
        )
        held = (
            self._run_start_s is not None and t_s - self._run_start_s >= self.params.dwell_s - 1e-9
        )
        if held or elapsed_s >= self.params.limit_s:
            self._score()
            self.index += 1
            self.phase, self.phase_start_ns = "rest", now_ns
            if not self.done:
                self._cue(REST, None)

    def _score(self) -> None:
        target = self.targets[self.index]
        self.results.append(
            score_target(
                target.pose,
                target.effort,
                target.angles_deg,
                onset_s=self._s(self.phase_start_ns),
                times_s=self._times_s,
                angles_deg=np.asarray(self._angles).reshape(-1, len(target.angles_deg)),
                params=self.params,
            )
        )

    def progress(self, now_ns: int) -> dict[str, Any]:
        """What the client shows: the current target, time left and dwell progress."""
        if self.done:
            return {"phase": "done", "index": self.index, "n_targets": len(self.targets)}
        target = self.targets[self.index]
        elapsed_s = (now_ns - self.phase_start_ns) / NS_PER_S
        left_s = (self.rest_s if self.phase == "rest" else self.params.limit_s) - elapsed_s
        dwell = 0.0
        if self.phase == "target" and self._run_start_s is not None and self._times_s:
            held_s = self._times_s[-1] - self._run_start_s
            dwell = 1.0 if self.params.dwell_s <= 0 else min(1.0, held_s / self.params.dwell_s)
        return {
            "phase": self.phase,
            "index": self.index,
            "n_targets": len(self.targets),
            "pose": target.pose,
            "effort": target.effort,
            "target_deg": list(target.angles_deg),
            "time_left_s": max(0.0, left_s),
            "dwell_fraction": dwell,
            "hand_deg": self.hand_deg,
        }

    def report(self, *, partial: bool, model: str) -> dict[str, Any]:
        """The figures so far (per target kind and overall), with the criteria used."""
        summary = summarise(self.results)
        return {
            "format": REPORT_FORMAT,
            "model": model,
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "partial": partial,
            "n_planned": len(self.targets),
            "tolerance_deg": self.params.tolerance_deg,
            "dwell_s": self.params.dwell_s,
            "limit_s": self.params.limit_s,
            "rest_s": self.rest_s,
            "completion_rate": summary["overall"]["completion_rate"],
            "overall": summary["overall"],
            "per_target": summary["per_target"],
            "targets": [r.to_dict() for r in self.results],
        }


def store_report(state_dir: Path, model_path: Path, report: Mapping[str, Any]) -> str:
    """Store a finished report beside the model; returns where (a path or store entry).

    In the model store's entry when ``model_path`` is the active installed model (same file
    and sha256), else as ``<state_dir>/tac/<sha12>.json``.

    Raises
    ------
    ModelError
        When the file cannot be written (the message names it).
    """
    store = ModelStore(state_dir)
    try:
        active = store.active()
    except ModelError:
        active = None
    if active is not None and active.path.resolve() == model_path.resolve():
        entry = store.set_tac_test(active.version, dict(report))
        return str(entry)
    folder = state_dir / TAC_DIR_NAME
    path = folder / f"{sha256_of(model_path)[:12]}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(report, indent=2) + "\n").encode())
    except OSError as exc:
        raise ModelError(f"{path}: TAC report not saved: {exc.strerror or exc}") from None
    return str(path)


def _number(params: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidParams(f"tac.start {key} {value!r}: expected a number {low:g}-{high:g}")
    return float(value)


class TacService:
    """Hosts TAC tests for the daemon.

    Parameters
    ----------
    state_dir:
        Where the report of a model not in the model store goes (``tac/``).
    clock:
        The loop's clock.
    submit:
        Runs a callable in the loop thread at the next hop (``Daemon.submit``).
    model:
        Returns the model the daemon runs now (``.spec``, ``.path``, ``.identity``).
    on_cue:
        Told ``(pose, effort)`` at each onset (the simulated wearer); ``None`` for none.
    client_timeout_s:
        A test ends (partial, not stored) when its client is silent this long.

    Notes
    -----
    Threads: :meth:`handlers` run in the status server thread and only read
    :attr:`snapshot` or :func:`submit`; everything else runs in the loop thread.
    """

    def __init__(
        self,
        state_dir: Path,
        clock: Clock,
        *,
        submit: Callable[[Callable[[], None]], None],
        model: Callable[[], Any],
        on_cue: CueCallback | None = None,
        client_timeout_s: float = CLIENT_TIMEOUT_S,
    ) -> None:
        self._state_dir = state_dir
        self._clock = clock
        self._submit = submit
        self._model = model
        self.on_cue = on_cue
        self.client_timeout_s = client_timeout_s
        self._run: TacRun | None = None
        self._model_identity = ""
        self._commands = CommandLedger(submit, clock, self._publish)
        self._session_number = 0
        self._result: dict[str, Any] | None = None
        self.snapshot: Mapping[str, Any] = {}
        self._publish()

    # ------------------------------------------------------------------ loop thread
    @property
    def active(self) -> bool:
        return self._run is not None

    def tick(self, now_ns: int, commanded_deg: npt.ArrayLike) -> None:
        """Feed one hop's commanded angles (loop thread, after the servo write)."""
        run = self._run
        if run is None:
            return
        if self._model().identity != self._model_identity:
            self._end(run, "the daemon's model changed during the test")
            return
        silent_s = self._commands.silent_s(now_ns)
        if silent_s > self.client_timeout_s:
            self._end(run, f"no word from the client for {silent_s:.0f} s")
            return
        run.feed(now_ns, commanded_deg)
        if run.done:
            self._complete(run)
        self._publish(now_ns)

    def _end(self, run: TacRun, reason: str) -> None:
        report = run.report(partial=True, model=self._model_identity)
        self._finish({"outcome": "stopped", "reason": reason, "report": report})

    def _complete(self, run: TacRun) -> None:
        report = run.report(partial=False, model=self._model_identity)
        try:
            where = store_report(self._state_dir, Path(self._model().path), report)
        except (ModelError, OSError) as exc:
            self._finish({"outcome": "not_stored", "reason": str(exc), "report": report})
            return
        self._finish({"outcome": "stored", "stored_in": where, "report": report})

    def _finish(self, result: dict[str, Any]) -> None:
        self._run = None
        self._result = result
        self._publish()

    def _start(
        self, reps: int, params: TacParams, rest_s: float, only: Sequence[str] | None
    ) -> None:
        if self._run is not None:
            raise InvalidParams("tac.start: a TAC test is already running")
        model = self._model()
        self._model_identity = str(model.identity)
        now_ns = self._clock.monotonic_ns()
        targets = protocol_for(model.spec, reps, only)
        if not targets:
            raise InvalidParams(f"tac.start poses {list(only or [])}: the model knows none of them")
        self._run = TacRun(targets, params, rest_s, now_ns, self.on_cue)
        self._session_number += 1
        self._result = None

    def _stop(self) -> None:
        if self._run is None:
            raise InvalidParams("tac.stop: no TAC test running (call tac.start)")
        self._end(self._run, "stopped by the client")

    def _publish(self, now_ns: int | None = None) -> None:
        run = self._run
        now = self._clock.monotonic_ns() if now_ns is None else now_ns
        self.snapshot = {
            "active": run is not None,
            "session": self._session_number,
            **self._commands.fields(),
            "tolerance_deg": None if run is None else run.params.tolerance_deg,
            "progress": None if run is None else run.progress(now),
            "done": [] if run is None else [r.to_dict() for r in run.results],
            "result": self._result,
        }

    # ------------------------------------------------------------------ server thread
    def handlers(self) -> dict[str, Handler]:
        """The ``tac.*`` socket handlers (run in the status server thread)."""
        return {
            "tac.start": self._handle_start,
            "tac.progress": self._handle_progress,
            "tac.stop": lambda params, peer: self._commands.queue(self._stop),
        }

    def _handle_start(self, params: dict[str, Any], peer: object) -> dict[str, int]:
        reps = params.get("reps", 1)
        if isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= MAX_REPS:
            raise InvalidParams(f"tac.start reps {reps!r}: expected an integer 1-{MAX_REPS}")
        tac = TacParams(
            tolerance_deg=_number(params, "tolerance_deg", 15.0, 0.1, 90.0),
            dwell_s=_number(params, "dwell_s", 1.0, 0.0, 60.0),
            limit_s=_number(params, "limit_s", 15.0, 0.1, 600.0),
        )
        rest_s = _number(params, "rest_s", DEFAULT_REST_S, 0.0, MAX_REST_S)
        only = params.get("poses")
        if only is not None and (
            not isinstance(only, list) or not only or any(p not in POSE_NAMES for p in only)
        ):
            raise InvalidParams(
                f"tac.start poses {only!r}: expected a list of {', '.join(POSE_NAMES)}"
            )
        return self._commands.queue(lambda: self._start(reps, tac, rest_s, only))

    def _handle_progress(self, params: dict[str, Any], peer: object) -> Mapping[str, Any]:
        snapshot = self.snapshot
        self._commands.poll(bool(snapshot.get("active")))  # polling is the heartbeat
        return snapshot
