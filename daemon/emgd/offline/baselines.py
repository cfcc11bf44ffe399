"""The two feature baselines every evaluation is compared with: Hudgins features + ridge / LDA.

This module owns the field's standard pattern-recognition controllers, fitted per
participant on the train split and scored on the test split with :mod:`emgd.offline.metrics`:

* signal: each recording is band-passed causally (Butterworth, 20–450 Hz clipped below
  Nyquist, started in steady state so the electrode offset causes no transient);
* features: Hudgins' time-domain set per channel on 200 ms windows every 50 ms — mean absolute
  value (MAV), waveform length (WL), zero crossings (ZC) and slope sign changes (SSC), the last
  two counted only above a per-channel noise threshold learnt from the training signal;
* (a) ridge regression from standardised features to the five angles, ``alpha`` chosen by
  cross-validation over recordings grouped by rep;
* (b) linear discriminant analysis (shared covariance with fixed shrinkage, equal priors) of
  the gesture label, each predicted class mapped to its pose's angles.

Both predict at each window end (the newest sample of the window) and are scored against the
target there. It is plain NumPy/SciPy, fits in seconds, and must not know files or the
network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, sosfilt, sosfilt_zi

from emgd.data.recording import Recording, check_same_layout
from emgd.errors import ConfigError, DatasetError
from emgd.offline.metrics import held_at, mean_ignoring_nan, ramp_correlation, summarise
from emgd.poses import ANGLE_MAX_DEG, ANGLE_MIN_DEG, N_FINGERS, REST, pose_angles_deg

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# --- windows and signal ---------------------------------------------------------------------
WINDOW_S = 0.2
HOP_S = 0.05
BANDPASS_LOW_HZ = 20.0
BANDPASS_HIGH_HZ = 450.0
BANDPASS_ORDER = 4
MAX_HIGH_FRACTION_OF_NYQUIST = 0.95
# --- Hudgins features -----------------------------------------------------------------------
N_FEATURES_PER_CHANNEL = 4  # MAV, WL, ZC, SSC; columns are feature-major: f·C + channel
FEATURE_NAMES: tuple[str, ...] = ("mav", "wl", "zc", "ssc")
# Noise floor of a channel = this percentile of its training window RMS (the quietest windows).
NOISE_FLOOR_PERCENTILE = 5.0
# ZC/SSC threshold = this multiple of the noise floor RMS (signal units).
NOISE_THRESHOLD_SCALE = 0.5
# --- models ---------------------------------------------------------------------------------
# Ridge penalty per training window, in standardised feature units: candidates for CV.
RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-6.0, 2.0, 17))
MAX_CV_FOLDS = 4
# LDA covariance shrinkage towards a scaled identity, (1 − λ)·Σ + λ·(tr Σ / d)·I.
LDA_SHRINKAGE = 0.1
MIN_FEATURE_STD = 1e-12

LdaAngles = Literal["pose", "class_mean"]


# --- signal and features ----------------------------------------------------------------------


def window_samples(
    sample_rate_hz: float, window_s: float = WINDOW_S, hop_s: float = HOP_S
) -> tuple[int, int]:
    """Window and hop lengths in samples (rounded, at least 2 and 1)."""
    if not (window_s > 0.0 and hop_s > 0.0 and math.isfinite(window_s) and math.isfinite(hop_s)):
        raise ConfigError(f"window_s and hop_s must be > 0, got {window_s!r} and {hop_s!r}")
    return max(2, round(window_s * sample_rate_hz)), max(1, round(hop_s * sample_rate_hz))


def bandpass(emg: FloatArray, sample_rate_hz: float) -> FloatArray:
    """Causal Butterworth band-pass of each channel, started in steady state.

    Parameters
    ----------
    emg:
        Shape ``(n, C)``.
    sample_rate_hz:
        Sampling rate; the upper edge is clipped to ``0.95 ×`` Nyquist.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, C)``.
    """
    nyquist_hz = sample_rate_hz / 2.0
    high_hz = min(BANDPASS_HIGH_HZ, MAX_HIGH_FRACTION_OF_NYQUIST * nyquist_hz)
    if high_hz <= BANDPASS_LOW_HZ:
        raise ConfigError(f"sample rate {sample_rate_hz:g} Hz is too low for a 20 Hz band-pass")
    sos = butter(
        BANDPASS_ORDER,
        [BANDPASS_LOW_HZ, high_hz],
        btype="bandpass",
        fs=sample_rate_hz,
        output="sos",
    )
    zi = sosfilt_zi(sos)[:, :, None] * emg[0][None, None, :]
    out, _ = sosfilt(sos, emg, axis=0, zi=zi)
    result: FloatArray = np.asarray(out, dtype=np.float64)
    return result


def _window_sums(
    per_sample: npt.NDArray[Any], starts: IntArray, stops: IntArray
) -> npt.NDArray[Any]:
    """Sum of ``per_sample[starts[w]:stops[w]]`` for every window (cumulative-sum trick)."""
    cs = np.concatenate(
        [np.zeros((1, per_sample.shape[1]), per_sample.dtype), np.cumsum(per_sample, axis=0)]
    )
    out: npt.NDArray[Any] = cs[stops] - cs[starts]
    return out


def window_end_indices(n_samples: int, window_n: int, hop_n: int) -> IntArray:
    """Newest-sample index of every complete window of ``n_samples``: ``window_n − 1``,
    then every ``hop_n`` samples (the instants at which the baselines are scored)."""
    return np.arange(window_n - 1, n_samples, hop_n, dtype=np.int64)


def hudgins_features(
    emg: FloatArray, window_n: int, hop_n: int, threshold: FloatArray | float = 0.0
) -> tuple[FloatArray, IntArray]:
    """Hudgins MAV, WL, ZC and SSC of every complete window.

    Windows are ``emg[e − window_n : e]`` for ``e = window_n, window_n + hop_n, … ≤ n``. Within
    a window, with ``d_i = x_{i+1} − x_i``:

    * MAV = mean of ``|x|``;
    * WL = sum of ``|d_i|``;
    * ZC = count of ``x_i·x_{i+1} < 0`` with ``|d_i| ≥ threshold``;
    * SSC = count of samples ``i`` with ``(x_i − x_{i−1})·(x_i − x_{i+1}) > 0`` and
      ``≥ threshold²`` (both neighbours inside the window).

    Parameters
    ----------
    emg:
        Shape ``(n, C)``, zero-mean (band-passed) signal.
    window_n, hop_n:
        Window and hop in samples.
    threshold:
        Scalar or shape ``(C,)``: noise threshold in signal units.

    Returns
    -------
    features, end_index:
        Shapes ``(W, 4·C)`` (columns MAV₀…MAV_{C−1}, WL…, ZC…, SSC…) and ``(W,)``: the index
        of each window's newest sample (``e − 1``).
    """
    x = np.asarray(emg, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"hudgins_features: emg must have shape (n, C), got {x.shape}")
    if window_n < 3 or hop_n < 1:
        raise ConfigError(
            f"hudgins_features: need window_n >= 3 and hop_n >= 1, got {window_n}, {hop_n}"
        )
    n, n_ch = x.shape
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_ch,))
    if n < window_n:
        return np.empty((0, N_FEATURES_PER_CHANNEL * n_ch)), np.empty(0, dtype=np.int64)
    stops = window_end_indices(n, window_n, hop_n) + 1
    starts = stops - window_n
    d = np.diff(x, axis=0)  # (n − 1, C): pair i is (x_i, x_{i+1})
    abs_d = np.abs(d)
    zc = ((x[:-1] * x[1:] < 0.0) & (abs_d >= thr[None, :])).astype(np.int64)
    prod = -d[:-1] * d[1:]  # row j: (x_{j+1} − x_j)·(x_{j+1} − x_{j+2}), middle sample j + 1
    ssc = ((prod > 0.0) & (prod >= (thr**2)[None, :])).astype(np.int64)
    mav = _window_sums(np.abs(x), starts, stops) / window_n
    wl = _window_sums(abs_d, starts, stops - 1)
    zcs = _window_sums(zc, starts, stops - 1)
    sscs = _window_sums(ssc, starts, stops - 2)
    features = np.concatenate([mav, wl, zcs.astype(np.float64), sscs.astype(np.float64)], axis=1)
    return features, stops - 1


@dataclass(frozen=True)
class WindowedSet:
    """Features and targets of every window of a list of recordings.

    Attributes
    ----------
    features:
        Shape ``(W, F)``.
    targets_deg:
        Shape ``(W, 5)``: the target at each window's newest sample.
    labels:
        Shape ``(W,)``: the gesture label there.
    poses:
        Shape ``(W,)``: the pose of that label.
    recording:
        Shape ``(W,)``: index of the recording each window comes from.
    """

    features: FloatArray
    targets_deg: FloatArray
    labels: npt.NDArray[np.str_]
    poses: npt.NDArray[np.str_]
    recording: IntArray


class HudginsExtractor:
    """Band-pass + Hudgins features with per-channel noise thresholds learnt on training data.

    Parameters
    ----------
    sample_rate_hz, n_channels:
        Layout of every recording it will see.
    window_s, hop_s:
        Window length and hop.
    """

    def __init__(
        self,
        sample_rate_hz: float,
        n_channels: int,
        *,
        window_s: float = WINDOW_S,
        hop_s: float = HOP_S,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.n_channels = n_channels
        self.window_n, self.hop_n = window_samples(sample_rate_hz, window_s, hop_s)
        self.threshold: FloatArray = np.zeros(n_channels)

    def fit(self, recordings: Sequence[Recording]) -> HudginsExtractor:
        """Learn each channel's noise threshold from the quietest training windows."""
        rms_rows: list[FloatArray] = []
        for rec in recordings:
            x = bandpass(rec.emg, rec.sample_rate_hz)
            power, _ = hudgins_features(x * x, self.window_n, self.hop_n)
            rms_rows.append(np.sqrt(power[:, : self.n_channels]))  # MAV of x² = mean power
        rms = np.concatenate(rms_rows, axis=0)
        if rms.shape[0] == 0:
            raise DatasetError(
                f"no training recording is longer than one window ({self.window_n} samples)"
            )
        self.threshold = NOISE_THRESHOLD_SCALE * np.percentile(rms, NOISE_FLOOR_PERCENTILE, axis=0)
        return self

    def window_ends(self, n_samples: int) -> IntArray:
        """Window-end indices of a recording of ``n_samples`` (as :meth:`transform` gives)."""
        return window_end_indices(n_samples, self.window_n, self.hop_n)

    def transform(self, rec: Recording) -> tuple[FloatArray, IntArray]:
        """Features ``(W, 4·C)`` and window-end indices ``(W,)`` of one recording."""
        return self.transform_emg(rec.emg, rec.sample_rate_hz, rec.source)

    def transform_emg(
        self, emg: FloatArray, sample_rate_hz: float, where: str
    ) -> tuple[FloatArray, IntArray]:
        """Features and window ends of raw EMG ``(n, C)`` (``where`` names it in errors)."""
        n_channels = emg.shape[1] if emg.ndim == 2 else 0
        if n_channels != self.n_channels or sample_rate_hz != self.sample_rate_hz:
            raise DatasetError(
                f"{where}: {n_channels} channels at {sample_rate_hz:g} Hz, but the "
                f"baselines were fitted on {self.n_channels} at {self.sample_rate_hz:g} Hz"
            )
        return hudgins_features(
            bandpass(emg, sample_rate_hz), self.window_n, self.hop_n, self.threshold
        )

    def windowed(self, recordings: Sequence[Recording]) -> WindowedSet:
        """Every window of every recording, stacked."""
        feats: list[FloatArray] = []
        targets: list[FloatArray] = []
        labels: list[npt.NDArray[np.str_]] = []
        poses: list[npt.NDArray[np.str_]] = []
        index: list[IntArray] = []
        for i, rec in enumerate(recordings):
            f, ends = self.transform(rec)
            feats.append(f)
            targets.append(rec.targets_deg[ends])
            labels.append(rec.labels()[ends])
            poses.append(rec.poses()[ends])
            index.append(np.full(ends.shape[0], i, dtype=np.int64))
        return WindowedSet(
            features=np.concatenate(feats, axis=0),
            targets_deg=np.concatenate(targets, axis=0),
            labels=np.concatenate(labels),
            poses=np.concatenate(poses),
            recording=np.concatenate(index),
        )


# --- models ---------------------------------------------------------------------------------


class Standardiser:
    """Per-feature ``(x − mean) / std`` learnt on training features (constant features → 0)."""

    def __init__(self, features: FloatArray) -> None:
        self.mean: FloatArray = features.mean(axis=0)
        std = features.std(axis=0)
        self.std: FloatArray = np.where(std > MIN_FEATURE_STD, std, 1.0)

    def __call__(self, features: FloatArray) -> FloatArray:
        out: FloatArray = (features - self.mean) / self.std
        return out


def ridge_solve(
    features: FloatArray, targets: FloatArray, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Closed-form ridge with an unpenalised intercept.

    Minimises ``‖y − b − X·W‖² + alpha·W·‖W‖²`` with ``W`` the number of rows (so ``alpha`` is
    per window).

    Parameters
    ----------
    features:
        Shape ``(W, F)``.
    targets:
        Shape ``(W, K)``.

    Returns
    -------
    weights, intercept:
        Shapes ``(F, K)`` and ``(K,)``.
    """
    x_mean = features.mean(axis=0)
    y_mean = targets.mean(axis=0)
    xc = features - x_mean
    yc = targets - y_mean
    gram = xc.T @ xc + alpha * features.shape[0] * np.eye(features.shape[1])
    weights: FloatArray = np.linalg.solve(gram, xc.T @ yc)
    intercept: FloatArray = y_mean - x_mean @ weights
    return weights, intercept


def _fold_of_windows(recordings: Sequence[Recording], window_recording: IntArray) -> IntArray:
    """CV fold of each window: recordings grouped by rep (or by index if all reps are equal)."""
    reps = np.array([rec.rep for rec in recordings])
    distinct = np.unique(reps)
    if distinct.size >= 2:
        fold_of_rec = np.searchsorted(distinct, reps) % MAX_CV_FOLDS
    else:
        fold_of_rec = np.arange(len(recordings)) % MAX_CV_FOLDS
    out: IntArray = fold_of_rec[window_recording].astype(np.int64)
    return out


class RidgeBaseline:
    """Standardised Hudgins features → five angles by ridge regression (alpha by grouped CV)."""

    def __init__(self) -> None:
        self.alpha = math.nan
        self.cv_mae_deg: dict[float, float] = {}
        self.scale: Standardiser | None = None
        self.weights: FloatArray = np.empty((0, N_FINGERS))
        self.intercept: FloatArray = np.zeros(N_FINGERS)

    def fit(self, train: WindowedSet, folds: IntArray) -> RidgeBaseline:
        self.scale = Standardiser(train.features)
        x = self.scale(train.features)
        y = train.targets_deg
        fold_ids = np.unique(folds)
        for alpha in RIDGE_ALPHAS:
            if fold_ids.size < 2:
                break
            errors: list[float] = []
            for k in fold_ids:
                held = folds == k
                w, b = ridge_solve(x[~held], y[~held], alpha)
                pred = np.clip(x[held] @ w + b, ANGLE_MIN_DEG, ANGLE_MAX_DEG)
                errors.append(float(np.abs(pred - y[held]).mean()))
            self.cv_mae_deg[alpha] = float(np.mean(errors))
        if self.cv_mae_deg:
            self.alpha = min(self.cv_mae_deg, key=lambda a: (self.cv_mae_deg[a], -a))
        else:
            self.alpha = 1.0
        self.weights, self.intercept = ridge_solve(x, y, self.alpha)
        return self

    def predict(self, features: FloatArray) -> FloatArray:
        """Shape ``(W, 5)``: angles clipped to ``[0, 180]`` degrees."""
        if self.scale is None:
            raise ConfigError("RidgeBaseline.predict called before fit")
        out: FloatArray = np.clip(
            self.scale(features) @ self.weights + self.intercept, ANGLE_MIN_DEG, ANGLE_MAX_DEG
        )
        return out


class LdaBaseline:
    """Standardised Hudgins features → gesture class by shrinkage LDA → that class's angles.

    Parameters
    ----------
    shrinkage:
        λ of ``(1 − λ)·Σ + λ·(tr Σ / d)·I``.
    angles:
        ``"pose"``: each class maps to its pose's full angles (the usual pattern-recognition
        controller). ``"class_mean"``: to the mean training target of the class (the same for
        fixed-pose data; the average effort for proportional data).
    """

    def __init__(self, shrinkage: float = LDA_SHRINKAGE, angles: LdaAngles = "pose") -> None:
        if not 0.0 <= shrinkage <= 1.0:
            raise ConfigError(f"LDA shrinkage must be in [0, 1], got {shrinkage!r}")
        if angles not in ("pose", "class_mean"):
            raise ConfigError(f"LDA angles must be 'pose' or 'class_mean', got {angles!r}")
        self.shrinkage = shrinkage
        self.angles = angles
        self.classes: tuple[str, ...] = ()
        self.class_angles_deg: FloatArray = np.empty((0, N_FINGERS))
        self.scale: Standardiser | None = None
        self.coef: FloatArray = np.empty((0, 0))
        self.offset: FloatArray = np.empty(0)

    def fit(self, train: WindowedSet) -> LdaBaseline:
        self.scale = Standardiser(train.features)
        x = self.scale(train.features)
        classes, y = np.unique(train.labels, return_inverse=True)
        n, d = x.shape
        k = classes.size
        if k < 2:
            raise DatasetError(
                f"LDA needs at least two gesture classes in training, got {list(classes)}"
            )
        means = np.stack([x[y == c].mean(axis=0) for c in range(k)])
        resid = x - means[y]
        cov = resid.T @ resid / max(n - k, 1)
        cov = (1.0 - self.shrinkage) * cov + self.shrinkage * (np.trace(cov) / d) * np.eye(d)
        inv_means = np.linalg.solve(cov, means.T)  # (d, k)
        self.coef = inv_means
        self.offset = -0.5 * np.einsum("kd,dk->k", means, inv_means)
        self.classes = tuple(str(c) for c in classes)
        rows: list[FloatArray] = []
        for c, name in enumerate(self.classes):
            if self.angles == "class_mean":
                rows.append(train.targets_deg[y == c].mean(axis=0))
                continue
            poses = np.unique(train.poses[y == c])
            if poses.size != 1:
                raise DatasetError(
                    f"label {name!r} maps to several poses in training: {list(poses)}"
                )
            rows.append(pose_angles_deg(str(poses[0])))
        self.class_angles_deg = np.stack(rows)
        return self

    def predict_class(self, features: FloatArray) -> IntArray:
        """Shape ``(W,)``: index into :attr:`classes`."""
        if self.scale is None:
            raise ConfigError("LdaBaseline.predict_class called before fit")
        scores = self.scale(features) @ self.coef + self.offset
        out: IntArray = np.argmax(scores, axis=1).astype(np.int64)
        return out

    def predict(self, features: FloatArray) -> FloatArray:
        """Shape ``(W, 5)``: the angles of each predicted class."""
        out: FloatArray = self.class_angles_deg[self.predict_class(features)]
        return out


@dataclass(frozen=True)
class FittedBaselines:
    """Both baselines fitted on one participant's train split, ready to predict."""

    extractor: HudginsExtractor
    ridge: RidgeBaseline
    lda: LdaBaseline
    n_train_windows: int

    def predict(self, rec: Recording) -> tuple[IntArray, FloatArray, FloatArray]:
        """Window-end indices ``(W,)`` and ridge / LDA angles ``(W, 5)`` for one recording."""
        features, ends = self.extractor.transform(rec)
        if ends.size == 0:
            empty = np.empty((0, N_FINGERS))
            return ends, empty, empty
        return ends, self.ridge.predict(features), self.lda.predict(features)

    def held_at(
        self, emg: FloatArray, sample_rate_hz: float, instants: IntArray, where: str
    ) -> dict[str, FloatArray]:
        """What each baseline outputs at ``instants`` when run on one continuous stream.

        The stream ``(n, C)`` is filtered and windowed as a whole (windows straddle the
        joins between recordings, as on a device), and each window's output is held until
        the next window ends (zero-order hold). Instants before the first window end get
        the rest pose.

        Returns
        -------
        dict
            ``"ridge"``, ``"lda"``: shape ``(len(instants), 5)``.
        """
        features, ends = self.extractor.transform_emg(emg, sample_rate_hz, where)
        rest = pose_angles_deg(REST)
        out: dict[str, FloatArray] = {}
        for name, model in (("ridge", self.ridge), ("lda", self.lda)):
            angles = model.predict(features) if ends.size else np.empty((0, N_FINGERS))
            out[name] = held_at(instants, ends, angles, rest)
        return out


def fit_baselines(
    train: Sequence[Recording],
    *,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    lda_angles: LdaAngles = "pose",
) -> FittedBaselines:
    """Fit the feature extractor, ridge and LDA on a train split.

    Raises
    ------
    DatasetError
        If recordings differ in layout, none is longer than a window, or there are fewer
        than two gesture labels.
    """
    n_channels, fs = check_same_layout(train, "baselines train split")
    extractor = HudginsExtractor(fs, n_channels, window_s=window_s, hop_s=hop_s).fit(train)
    windows = extractor.windowed(train)
    ridge = RidgeBaseline().fit(windows, _fold_of_windows(train, windows.recording))
    lda = LdaBaseline(angles=lda_angles).fit(windows)
    return FittedBaselines(extractor, ridge, lda, int(windows.features.shape[0]))


def _ramp_scores(per_file: dict[str, float]) -> tuple[float | None, dict[str, float]]:
    scored = {k: v for k, v in per_file.items() if math.isfinite(v)}
    if not scored:
        return None, {}
    return mean_ignoring_nan(list(scored.values())), scored


def evaluate_baselines(
    train: Sequence[Recording],
    test: Sequence[Recording],
    *,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    lda_angles: LdaAngles = "pose",
    fitted: FittedBaselines | None = None,
) -> dict[str, Any]:
    """Fit both baselines on ``train`` and score them on ``test`` at every window end.

    Parameters
    ----------
    train, test:
        One participant's split (same channels and sampling rate).
    window_s, hop_s:
        Feature window and hop (200 ms / 50 ms by default).
    lda_angles:
        How LDA classes become angles (see :class:`LdaBaseline`).
    fitted:
        Baselines already fitted on ``train`` with the options above.

    Returns
    -------
    dict
        JSON-ready: ``window_s``, ``hop_s``, ``n_train_windows``, ``n_test_windows``, and for
        each of ``"ridge"``, ``"lda"`` and the trivial reference ``"rest"`` (always the rest
        pose): ``mae_deg`` (per finger), ``mae_mean_deg``, ``r2`` (per finger, ``None`` where
        undefined), ``r2_mean``, ``ramp_r`` (mean over the test ramp files of gestures, ``None``
        if there are none) and ``ramp_r_per_file``; plus ``"ridge"["alpha"]``,
        ``"lda"["accuracy"]`` (fraction of windows whose label is predicted) and
        ``"lda"["shrinkage"]``.
    """
    if fitted is None:
        fitted = fit_baselines(train, window_s=window_s, hop_s=hop_s, lda_angles=lda_angles)
    check_same_layout([*train[:1], *test], "baselines test split")
    targets: list[FloatArray] = []
    preds: dict[str, list[FloatArray]] = {"ridge": [], "lda": [], "rest": []}
    ramp: dict[str, dict[str, float]] = {"ridge": {}, "lda": {}, "rest": {}}
    hits = 0
    rest_deg = pose_angles_deg(REST)
    for rec in test:
        features, ends = fitted.extractor.transform(rec)
        if ends.size == 0:
            continue
        target = rec.targets_deg[ends]
        targets.append(target)
        lda_class = fitted.lda.predict_class(features)
        hits += int((np.asarray(fitted.lda.classes)[lda_class] == rec.labels()[ends]).sum())
        rest = np.repeat(rest_deg[None, :], ends.size, axis=0)
        for name, pred in (
            ("ridge", fitted.ridge.predict(features)),
            ("lda", fitted.lda.class_angles_deg[lda_class]),
            ("rest", rest),
        ):
            preds[name].append(pred)
            if rec.is_ramp and ends.size >= 2:
                ramp[name][rec.source] = ramp_correlation(pred, target)
    if not targets:
        raise DatasetError("no test recording is longer than one feature window")
    target_all = np.concatenate(targets)
    out: dict[str, Any] = {
        "window_s": window_s,
        "hop_s": hop_s,
        "n_train_windows": fitted.n_train_windows,
        "n_test_windows": int(target_all.shape[0]),
    }
    for name in ("ridge", "lda", "rest"):
        report = summarise(np.concatenate(preds[name]), target_all)
        report["ramp_r"], report["ramp_r_per_file"] = _ramp_scores(ramp[name])
        out[name] = report
    out["ridge"]["alpha"] = fitted.ridge.alpha
    out["lda"]["accuracy"] = hits / target_all.shape[0]
    out["lda"]["shrinkage"] = fitted.lda.shrinkage
    return out
