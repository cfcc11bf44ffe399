"""The safety stage: what reaches the servos, whatever the model or the hardware did.

Owns the state machine RUNNING / HOLD / FAULT and the output limits. Each hop it takes the
model's proposed angles (or nothing, on a model error) and the set of active faults, and
returns the angles to command:

- RUNNING: proposal → clamp to each finger's limits → optional One Euro smoothing →
  slew-rate limit against the previous command.
- HOLD (paused, calibrating): the previous command, unchanged.
- FAULT (stale or missing samples, railed or flat channels, model error or non-finite
  output, I²C errors): hold the current pose; a fault that persists longer than
  ``fault_hold_s`` moves the hand to the safe pose at ``safe_pose_rate_deg_s``.

Whatever comes in, every output is finite, inside the limits, and differs from the previous
command by at most ``max_rate_deg_s × dt``; the one exception is a finger that
:meth:`SafetyGate.hold_at` with ``clamp=False`` placed beyond its limits (a servo held there
by a raw pulse): it walks back inside at the same rate and never moves further out. Values
in, values out: time is passed in, and this module talks to no hardware.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from emgd.clock import NS_PER_S
from emgd.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

N_FINGERS = 5
REST_POSE_DEG = (30.0,) * N_FINGERS
#: dt used on the first step and clamped to this range (a stalled loop must not unlock a jump).
DEFAULT_DT_S = 0.02
MAX_DT_S = 0.1


class SafetyState(enum.Enum):
    RUNNING = "running"
    HOLD = "hold"
    FAULT = "fault"


@dataclass(frozen=True)
class SafetySettings:
    """Limits and behaviour of the safety stage.

    Attributes
    ----------
    min_angle_deg, max_angle_deg:
        Per-finger limits (thumb … little), inside 0–180.
    max_rate_deg_s:
        Highest commanded speed of any finger while running.
    safe_pose_deg:
        Where a persistent fault sends the hand (default: relaxed rest).
    safe_pose_rate_deg_s:
        Speed of that move (slower than normal).
    fault_hold_s:
        How long a fault may last with the pose held before moving to the safe pose.
    smoothing:
        Apply a One Euro filter (speed-adaptive low-pass) to the proposals.
    min_cutoff_hz, beta, d_cutoff_hz:
        One Euro parameters: cutoff at rest, cutoff increase per deg/s, derivative cutoff.
    """

    min_angle_deg: tuple[float, ...] = (0.0,) * N_FINGERS
    max_angle_deg: tuple[float, ...] = (180.0,) * N_FINGERS
    max_rate_deg_s: float = 400.0
    safe_pose_deg: tuple[float, ...] = REST_POSE_DEG
    safe_pose_rate_deg_s: float = 60.0
    fault_hold_s: float = 1.0
    smoothing: bool = True
    min_cutoff_hz: float = 2.0
    beta: float = 0.02
    d_cutoff_hz: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_angle_deg", "max_angle_deg", "safe_pose_deg"):
            value = getattr(self, name)
            if len(value) != N_FINGERS or not all(math.isfinite(v) for v in value):
                raise ConfigError(f"safety {name} = {value!r}: needs {N_FINGERS} finite angles")
        for i, (lo, hi) in enumerate(zip(self.min_angle_deg, self.max_angle_deg, strict=True)):
            if not 0.0 <= lo < hi <= 180.0:
                raise ConfigError(
                    f"safety limits of finger {i}: {lo:g}..{hi:g}: need 0 <= min < max <= 180"
                )
        for name in ("max_rate_deg_s", "safe_pose_rate_deg_s", "min_cutoff_hz", "d_cutoff_hz"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"safety {name} = {value!r}: must be a positive number")
        for name in ("fault_hold_s", "beta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"safety {name} = {value!r}: must be zero or more")


@dataclass(frozen=True)
class SafetyOutput:
    """One hop's decision."""

    commanded_deg: FloatArray  # (5,) what to write to the servos
    state: SafetyState
    faults: frozenset[str]
    moving_to_safe_pose: bool


class OneEuroFilter:
    """The One Euro filter (Casiez, Roussel & Vogel 2012) on a vector, time passed in.

    A first-order low-pass whose cutoff rises with the signal's speed: smooth when the hand
    is still, little lag when it moves.
    """

    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> None:
        self._min_cutoff_hz = min_cutoff_hz
        self._beta = beta
        self._d_cutoff_hz = d_cutoff_hz
        self._x: FloatArray | None = None
        self._dx: FloatArray = np.zeros(N_FINGERS)

    def reset(self, value: FloatArray | None = None) -> None:
        """Forget the past; start from ``value`` (or from the next sample) at rest."""
        self._x = None if value is None else np.array(value, dtype=np.float64)
        self._dx = np.zeros(N_FINGERS)

    def __call__(self, x: FloatArray, dt_s: float) -> FloatArray:
        if self._x is None:
            self._x = np.array(x, dtype=np.float64)
            return self._x.copy()
        dx = (x - self._x) / dt_s
        self._dx = self._dx + _alpha(self._d_cutoff_hz, dt_s) * (dx - self._dx)
        cutoff = self._min_cutoff_hz + self._beta * np.abs(self._dx)
        self._x = self._x + _alpha_vec(cutoff, dt_s) * (x - self._x)
        return self._x.copy()


def _alpha(cutoff_hz: float, dt_s: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


def _alpha_vec(cutoff_hz: FloatArray, dt_s: float) -> FloatArray:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    out: FloatArray = 1.0 / (1.0 + tau / dt_s)
    return out


class SafetyGate:
    """The state machine and limits between the model and the servos.

    Parameters
    ----------
    settings:
        Limits and behaviour.
    initial_deg:
        The pose the servos hold now (written at start-up); clamped to the limits.
    """

    def __init__(self, settings: SafetySettings, initial_deg: Sequence[float]) -> None:
        self._s = settings
        self._lo = np.array(settings.min_angle_deg)
        self._hi = np.array(settings.max_angle_deg)
        self._safe = np.clip(np.array(settings.safe_pose_deg), self._lo, self._hi)
        start = np.array(initial_deg, dtype=np.float64)
        if start.shape != (N_FINGERS,) or not np.all(np.isfinite(start)):
            start = self._safe.copy()
        self._commanded = np.clip(start, self._lo, self._hi)
        self._paused = False
        self._fault_since_ns: int | None = None
        self._last_ns: int | None = None
        self._smoother = OneEuroFilter(settings.min_cutoff_hz, settings.beta, settings.d_cutoff_hz)
        self._smoother.reset(self._commanded)

    @property
    def commanded_deg(self) -> FloatArray:
        """The last command (a copy)."""
        return self._commanded.copy()

    @property
    def safe_pose_deg(self) -> FloatArray:
        """Where a lasting fault walks the hand (clamped to the limits; a copy)."""
        return np.array(self._safe, dtype=np.float64)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Enter HOLD: the pose stays where it is until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        """Leave HOLD; the next proposals move the hand from where it is, slew-limited."""
        self._paused = False
        self._smoother.reset(self._commanded)

    def hold_at(self, angles_deg: Sequence[float] | FloatArray, *, clamp: bool = True) -> None:
        """Take ``angles_deg`` as the current command: used when something other than the
        gate moved the servos (end-point calibration, a held pulse), so the next move
        starts from where the hand really is and stays slew-limited.

        With ``clamp=False`` an angle beyond a finger's limits is kept as it is: the next
        commands bring it inside at the hop's rate instead of in one jump to the limit.
        """
        angles = np.asarray(angles_deg, dtype=np.float64)
        if angles.shape != (N_FINGERS,) or not np.all(np.isfinite(angles)):
            raise ValueError(f"hold_at needs {N_FINGERS} finite angles, got {angles!r}")
        self._commanded = np.clip(angles, self._lo, self._hi) if clamp else angles.copy()
        self._smoother.reset(np.clip(self._commanded, self._lo, self._hi))

    def step(
        self,
        now_ns: int,
        proposed_deg: Sequence[float] | FloatArray | None,
        faults: Iterable[str] = (),
    ) -> SafetyOutput:
        """Decide this hop's command.

        Parameters
        ----------
        now_ns:
            Monotonic time of this hop.
        proposed_deg:
            Shape ``(5,)``: the model's angles, or ``None`` when the model failed.
        faults:
            Names of active faults (``"stale"``, ``"railed"``, ``"i2c"`` …).
        """
        dt_s = DEFAULT_DT_S if self._last_ns is None else (now_ns - self._last_ns) / NS_PER_S
        dt_s = min(max(dt_s, 1e-6), MAX_DT_S)
        self._last_ns = now_ns
        previous = self._commanded
        active = set(faults)
        proposal = None
        if proposed_deg is not None:
            proposal = np.asarray(proposed_deg, dtype=np.float64)
            if proposal.shape != (N_FINGERS,):
                active.add("model_shape")
                proposal = None
            elif not np.all(np.isfinite(proposal)):
                active.add("model_nonfinite")
                proposal = None
        else:
            active.add("model")

        moving_to_safe = False
        if active:
            if self._fault_since_ns is None:
                self._fault_since_ns = now_ns
            state = SafetyState.FAULT
            if (now_ns - self._fault_since_ns) / NS_PER_S >= self._s.fault_hold_s:
                moving_to_safe = True
                self._commanded = _towards(
                    self._commanded, self._safe, self._s.safe_pose_rate_deg_s * dt_s
                )
            self._smoother.reset(self._commanded)
        elif self._paused:
            self._fault_since_ns = None
            state = SafetyState.HOLD
        else:
            assert proposal is not None
            if self._fault_since_ns is not None:
                self._fault_since_ns = None
                self._smoother.reset(self._commanded)
            state = SafetyState.RUNNING
            # Clamp before smoothing too, so an absurd proposal cannot upset the filter.
            target = np.clip(proposal, self._lo, self._hi)
            if self._s.smoothing:
                target = np.clip(self._smoother(target, dt_s), self._lo, self._hi)
            self._commanded = _towards(self._commanded, target, self._s.max_rate_deg_s * dt_s)
        # Inside the limits; a finger held beyond them may only come back towards them.
        self._commanded = np.clip(
            self._commanded, np.minimum(self._lo, previous), np.maximum(self._hi, previous)
        )
        return SafetyOutput(
            commanded_deg=self._commanded.copy(),
            state=state,
            faults=frozenset(active),
            moving_to_safe_pose=moving_to_safe,
        )


def _towards(current: FloatArray, target: FloatArray, max_step_deg: float) -> FloatArray:
    step = np.clip(target - current, -max_step_deg, max_step_deg)
    out: FloatArray = current + step
    return out
