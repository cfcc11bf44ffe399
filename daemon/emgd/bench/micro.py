"""Side-by-side micro-benchmarks of ``emgd bench``: inference runtimes and filtering strategies.

This module owns two comparisons, each timed on identical inputs with an injected timer
(integer nanoseconds) so that tests can script the durations: onnxruntime against PyTorch
eager on one model file (same windows, same weights read from the file's initializers, both
on one thread, and how far apart their angles are), and the causal streaming filter against
re-filtering the whole window with zero-phase ``sosfiltfilt`` on every hop, as LibEMG's
online path does. Each returns a plain JSON-able dict for ``emgd bench`` to print. torch and
onnx (the ``train`` extra) are imported only inside :func:`compare_inference`, which skips
the PyTorch side without them. It must not start the daemon or any process, open buses or
sockets, or touch files other than reading the model; it measures and never decides.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt
from scipy import signal

from emgd.dsp.filters import StreamingFilter, design_sos
from emgd.errors import ModelError
from emgd.model.contract import PreprocessContract
from emgd.model.runtime import INTRA_OP_THREADS, OnnxModel

if TYPE_CHECKING:
    import torch
    from torch import nn

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]
TimerNs = Callable[[], int]  # zero-argument clock returning integer nanoseconds

NS_PER_MS = 1_000_000
DEFAULT_RUNS = 300
DEFAULT_INFERENCE_WARMUP = 20  # untimed calls per runtime before timing (allocations, caches)
DEFAULT_FILTER_WARMUP = 20  # untimed hops per filter path before timing
INPUT_SEED = 20_251_125  # seeds the EMG windows and the raw stream
N_INPUT_WINDOWS = 8  # distinct windows, cycled over the timed runs
HISTORY_LO_DEG = 30.0  # the history vector spans LO…HI degrees
HISTORY_HI_DEG = 150.0
RAW_STREAM_SCALE = 50.0  # standard deviation of the raw filter-bench stream, ADC-like units
PERCENTILE_P50 = 50.0
PERCENTILE_P99 = 99.0


class TimingSummaryMs(TypedDict):
    """Percentiles and mean of a list of durations, in milliseconds."""

    p50: float
    p99: float
    mean: float


class InferenceComparison(TypedDict):
    """What :func:`compare_inference` returns (JSON-able)."""

    model: str
    runs: int
    threads: int
    onnxruntime_ms: TimingSummaryMs
    torch_ms: TimingSummaryMs | None
    speedup_p50: float | None
    max_abs_diff_deg: float | None
    torch_skipped: str | None


class FilterComparison(TypedDict):
    """What :func:`compare_filters` returns (JSON-able)."""

    runs: int
    hop_samples: int
    window_samples: int
    n_channels: int
    streaming_ms: TimingSummaryMs
    filtfilt_window_ms: TimingSummaryMs
    ratio_p50: float | None


def summarise_ns(durations_ns: Sequence[int]) -> TimingSummaryMs:
    """p50, p99 and mean of durations given in nanoseconds, reported in milliseconds.

    Percentiles interpolate linearly between the sorted durations (NumPy's default).

    Raises
    ------
    ValueError
        When ``durations_ns`` is empty.
    """
    if len(durations_ns) == 0:
        raise ValueError("summarise_ns: no durations to summarise")
    arr_ms = np.asarray(durations_ns, dtype=np.float64) / NS_PER_MS
    return {
        "p50": float(np.percentile(arr_ms, PERCENTILE_P50)),
        "p99": float(np.percentile(arr_ms, PERCENTILE_P99)),
        "mean": float(np.mean(arr_ms)),
    }


def _ratio(numerator_ms: float, denominator_ms: float) -> float | None:
    """``numerator / denominator``, or ``None`` when the denominator is zero (a stalled timer)."""
    return numerator_ms / denominator_ms if denominator_ms > 0 else None


def _check_counts(runs: int, warmup: int) -> None:
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs = {runs!r}: must be an integer >= 1")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup = {warmup!r}: must be an integer >= 0")


# --- inference -------------------------------------------------------------------------------


def load_onnx_weights(net: nn.Module, model_path: Path) -> int:
    """Copy the weights stored in an ONNX file's initializers into a PyTorch network.

    The export keeps every parameter under its ``state_dict`` key, so each initializer
    must name a key of ``net.state_dict()`` with the same shape. The TorchScript exporter
    also stores equal tensors once (an untrained network's zero biases, say): the others
    become ``Identity`` nodes from the kept initializer to their own key, and are loaded
    from it. A key with neither is allowed only for a buffer or a parameter that is not
    trained (``requires_grad`` false), which keeps the value the network was built with.

    Parameters
    ----------
    net:
        The network, built from the model's spec (e.g. ``build_network(OnnxModel(path).spec)``).
    model_path:
        The ``.onnx`` file (read only).

    Returns
    -------
    int
        The number of tensors loaded (initializers and their aliases).

    Raises
    ------
    ModelError
        Naming the file and the key, when an initializer matches no key, a tensor has
        another shape than the network's, or a trained parameter has no value in the file.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(model_path)).graph
    except Exception as exc:  # onnx raises protobuf's untyped errors on a bad file
        raise ModelError(f"{model_path}: cannot read the ONNX file: {exc}") from None
    current = net.state_dict()
    stored: dict[str, npt.NDArray[Any]] = {}
    for initializer in graph.initializer:
        if initializer.name not in current:
            raise ModelError(
                f"{model_path}: initializer {initializer.name!r} matches no parameter "
                "of the network"
            )
        stored[initializer.name] = numpy_helper.to_array(initializer)
    for node in graph.node:  # in graph order, so an alias of an alias resolves too
        if node.op_type == "Identity" and node.input[0] in stored and node.output[0] in current:
            stored[node.output[0]] = stored[node.input[0]]
    loaded: dict[str, torch.Tensor] = {}
    for key, values in stored.items():
        want = tuple(current[key].shape)
        if tuple(values.shape) != want:
            raise ModelError(
                f"{model_path}: initializer {key!r} has shape {tuple(values.shape)}, "
                f"the network's {key} has {want}"
            )
        loaded[key] = torch.from_numpy(np.array(values)).to(current[key].dtype)
    trained = {name for name, param in net.named_parameters() if param.requires_grad}
    for key in current:
        if key not in loaded and key in trained:
            raise ModelError(f"{model_path}: no initializer for the trained parameter {key!r}")
    net.load_state_dict({**current, **loaded}, strict=True)
    return len(loaded)


def _inference_inputs(model: OnnxModel) -> tuple[list[Float32Array], Float32Array]:
    """``N_INPUT_WINDOWS`` seeded windows ``(W, C)`` and one history ``(H,)``, float32."""
    rng = np.random.default_rng(INPUT_SEED)
    shape = (model.contract.window_samples, model.spec.n_channels)
    windows = [rng.standard_normal(shape).astype(np.float32) for _ in range(N_INPUT_WINDOWS)]
    history_deg = np.linspace(
        HISTORY_LO_DEG, HISTORY_HI_DEG, model.spec.history_inputs, dtype=np.float32
    )
    return windows, history_deg


class _TorchSide:
    """PyTorch eager on a model file's weights, with the benchmark's inputs as tensors.

    Raises ImportError when torch or onnx is missing (the ``train`` extra).
    """

    def __init__(
        self, model: OnnxModel, windows: Sequence[Float32Array], history_deg: Float32Array
    ) -> None:
        import onnx  # noqa: F401  (load_onnx_weights needs it: fail here, before any work)
        import torch

        from emgd.model.ensemble import build_network

        self.net = build_network(model.spec)
        load_onnx_weights(self.net, model.path)
        self.net.eval()
        # emg (1, C, W): the window transposed, as the ONNX graph takes it; history (1, H).
        self.emg_inputs = [torch.from_numpy(np.ascontiguousarray(w.T))[None] for w in windows]
        self.history_input = torch.from_numpy(history_deg)[None]

    def run(self, index: int) -> torch.Tensor:
        """The network's output ``(1, n_outputs)`` degrees for window ``index``."""
        out: torch.Tensor = self.net(self.emg_inputs[index], self.history_input)
        return out

    @contextlib.contextmanager
    def timing_mode(self, threads: int) -> Iterator[None]:
        """Inference mode on ``threads`` intra-op threads, restoring the count afterwards."""
        import torch

        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(previous_threads)


def compare_inference(
    model_path: Path,
    *,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_INFERENCE_WARMUP,
    timer: TimerNs = time.perf_counter_ns,
) -> InferenceComparison:
    """Time onnxruntime and PyTorch eager on the same model, inputs and thread count.

    Each run takes the next of ``N_INPUT_WINDOWS`` seeded windows and times one
    onnxruntime call, then (when torch and onnx import) one PyTorch call on the same
    window, so both see the same machine load. The timer is read exactly twice per timed
    call, just before and just after it: with PyTorch the order per run is onnxruntime
    start, end, PyTorch start, end (``4·runs`` reads in all, ``2·runs`` without). Warm-up
    calls are not timed.

    Parameters
    ----------
    model_path:
        An emgd ``.onnx`` file (:class:`~emgd.model.runtime.OnnxModel` loads it).
    runs:
        Timed calls per runtime, >= 1.
    warmup:
        Untimed calls per runtime before timing, >= 0.
    timer:
        Zero-argument clock returning integer nanoseconds.

    Returns
    -------
    dict
        ``model`` (identity), ``runs``, ``threads``, ``onnxruntime_ms`` and ``torch_ms``
        (``p50``/``p99``/``mean``), ``speedup_p50`` (PyTorch p50 / onnxruntime p50),
        ``max_abs_diff_deg`` (largest angle difference over every timed run) and
        ``torch_skipped`` (why PyTorch was not run, else ``None``); the PyTorch figures are
        ``None`` when it was skipped.

    Raises
    ------
    ModelError
        When the file does not load, or its initializers do not fit the network its spec
        builds (:func:`load_onnx_weights`).
    ValueError
        When ``runs`` or ``warmup`` is out of range.
    """
    _check_counts(runs, warmup)
    model = OnnxModel(model_path)
    # OnnxModel already runs its session on one intra-op and one inter-op thread,
    # sequentially (runtime.INTRA_OP_THREADS); PyTorch is set to the same count below.
    threads = INTRA_OP_THREADS
    windows, history_deg = _inference_inputs(model)
    side: _TorchSide | None = None
    skipped: str | None = None
    try:
        side = _TorchSide(model, windows, history_deg)
    except ImportError as exc:
        missing = exc.name or "torch or onnx"
        skipped = f"{missing} is not installed (the train extra: pip install 'emgd[train]')"

    onnx_ns: list[int] = []
    torch_ns: list[int] = []
    max_diff_deg = 0.0
    with contextlib.ExitStack() as stack:
        if side is not None:
            stack.enter_context(side.timing_mode(threads))
        for i in range(warmup):
            model.infer(windows[i % N_INPUT_WINDOWS], history_deg)
            if side is not None:
                side.run(i % N_INPUT_WINDOWS)
        for i in range(runs):
            index = i % N_INPUT_WINDOWS
            start_ns = timer()
            onnx_deg = model.infer(windows[index], history_deg)
            end_ns = timer()
            onnx_ns.append(end_ns - start_ns)
            if side is None:
                continue
            start_ns = timer()
            torch_out = side.run(index)
            end_ns = timer()
            torch_ns.append(end_ns - start_ns)
            torch_deg = torch_out[0].double().numpy()
            max_diff_deg = max(max_diff_deg, float(np.max(np.abs(onnx_deg - torch_deg))))

    onnx_ms = summarise_ns(onnx_ns)
    torch_ms = summarise_ns(torch_ns) if side is not None else None
    return {
        "model": model.identity,
        "runs": runs,
        "threads": threads,
        "onnxruntime_ms": onnx_ms,
        "torch_ms": torch_ms,
        "speedup_p50": None if torch_ms is None else _ratio(torch_ms["p50"], onnx_ms["p50"]),
        "max_abs_diff_deg": None if side is None else max_diff_deg,
        "torch_skipped": skipped,
    }


# --- filtering -------------------------------------------------------------------------------


def compare_filters(
    contract: PreprocessContract,
    *,
    hop_samples: int | None = None,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_FILTER_WARMUP,
    timer: TimerNs = time.perf_counter_ns,
) -> FilterComparison:
    """Time the streaming filter against whole-window zero-phase filtering, hop by hop.

    One seeded raw stream ``(window_samples + (warmup + runs)·hop_samples, C)`` feeds both.
    The streaming filter first takes the opening window untimed (its start-up), then each
    hop's new block ``(hop_samples, C)``; the whole-window path re-filters the latest
    ``(window_samples, C)`` with ``scipy.signal.sosfiltfilt`` and the same SOS cascade
    (:func:`~emgd.dsp.filters.design_sos`). The timer is read twice per timed call; the
    order per hop is streaming start, end, ``sosfiltfilt`` start, end (``4·runs`` reads).

    Parameters
    ----------
    contract:
        Supplies the sampling rate, channel count, filter and window length.
    hop_samples:
        Samples per hop (default ``contract.hop_samples``), 1 to ``window_samples``.
    runs:
        Timed hops, >= 1.
    warmup:
        Untimed hops before timing, >= 0.
    timer:
        Zero-argument clock returning integer nanoseconds.

    Returns
    -------
    dict
        ``runs``, ``hop_samples``, ``window_samples``, ``n_channels``, ``streaming_ms`` and
        ``filtfilt_window_ms`` (``p50``/``p99``/``mean``) and ``ratio_p50`` (whole-window
        p50 / streaming p50: how many times cheaper streaming is per hop; ``None`` only when
        the streaming p50 is zero, which a real clock does not give).

    Raises
    ------
    ValueError
        When ``hop_samples``, ``runs`` or ``warmup`` is out of range.
    """
    _check_counts(runs, warmup)
    window_samples = contract.window_samples
    hop = contract.hop_samples if hop_samples is None else hop_samples
    if isinstance(hop, bool) or not isinstance(hop, int) or not 1 <= hop <= window_samples:
        raise ValueError(f"hop_samples = {hop!r}: must be an integer from 1 to {window_samples}")
    fs_hz, n_channels = contract.sample_rate_hz, contract.n_channels
    streaming = StreamingFilter(contract.filter_spec, fs_hz, n_channels)
    sos = design_sos(contract.filter_spec, fs_hz)
    rng = np.random.default_rng(INPUT_SEED)
    n_hops = warmup + runs
    raw: FloatArray = RAW_STREAM_SCALE * rng.standard_normal(
        (window_samples + n_hops * hop, n_channels)
    )
    streaming.process(raw[:window_samples])

    def hop_arrays(index: int) -> tuple[FloatArray, FloatArray]:
        """Hop ``index``'s new block ``(hop, C)`` and the window ending with it ``(W, C)``."""
        end = window_samples + (index + 1) * hop
        return raw[end - hop : end], raw[end - window_samples : end]

    for i in range(warmup):
        block, window = hop_arrays(i)
        streaming.process(block)
        signal.sosfiltfilt(sos, window, axis=0)
    streaming_ns: list[int] = []
    filtfilt_ns: list[int] = []
    for i in range(warmup, n_hops):
        block, window = hop_arrays(i)
        start_ns = timer()
        streaming.process(block)
        end_ns = timer()
        streaming_ns.append(end_ns - start_ns)
        start_ns = timer()
        signal.sosfiltfilt(sos, window, axis=0)
        end_ns = timer()
        filtfilt_ns.append(end_ns - start_ns)
    streaming_ms = summarise_ns(streaming_ns)
    filtfilt_ms = summarise_ns(filtfilt_ns)
    return {
        "runs": runs,
        "hop_samples": hop,
        "window_samples": window_samples,
        "n_channels": n_channels,
        "streaming_ms": streaming_ms,
        "filtfilt_window_ms": filtfilt_ms,
        "ratio_p50": _ratio(filtfilt_ms["p50"], streaming_ms["p50"]),
    }
