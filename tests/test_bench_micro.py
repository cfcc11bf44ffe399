"""Tests of the side-by-side micro-benchmarks: scripted timers, a real small model, filters."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from emgd.bench.micro import (
    compare_filters,
    compare_inference,
    load_onnx_weights,
    summarise_ns,
)
from emgd.clock import FakeClock
from emgd.dsp.filters import FilterSpec
from emgd.errors import ModelError
from emgd.model.contract import PreprocessContract
from emgd.model.spec import ModelSpec

GAP_NS = 7_000  # time between two timed calls, never part of a duration
SMALL_SPEC_KWARGS: dict[str, Any] = {
    "sample_rate_hz": 1000.0,
    "n_channels": 8,
    "common_length": 5,
    "mlp": (16, 8),
    "dropout": 0.2,  # so a network left in training mode would disagree with the file
}


class ScriptedTimer:
    """A nanosecond timer: each call returns the fake clock, then advances it by the next step.

    With steps ``[d, gap, …]`` a call timed between two reads lasts exactly ``d``.
    """

    def __init__(self, steps_ns: Iterable[int]) -> None:
        self.clock = FakeClock()
        self.steps_ns = itertools.cycle(list(steps_ns))
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        now_ns = self.clock.monotonic_ns()
        self.clock.advance_ns(next(self.steps_ns))
        return now_ns


def default_contract() -> PreprocessContract:
    return PreprocessContract.for_spec(
        ModelSpec(sample_rate_hz=1000.0, n_channels=8), FilterSpec(mains_hz=50.0)
    )


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained network with dropout, exported like a real model."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from emgd.model.export import export_onnx
    from emgd.model.network import EmgNet

    spec = ModelSpec(**SMALL_SPEC_KWARGS)
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=50.0))
    path = tmp_path_factory.mktemp("bench-model") / "small.onnx"
    export_onnx(EmgNet(spec, seed=1), spec, contract, {}, path)
    return path


def rewritten_model(source: Path, destination: Path, drop: str = "", add: str = "") -> Path:
    """A copy of ``source`` without initializer ``drop`` and/or with a stray one ``add``."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    kept = [init for init in model.graph.initializer if init.name != drop]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if add:
        model.graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.float32), add))
    onnx.save(model, str(destination))
    return destination


# --- summary ---------------------------------------------------------------------------------


def test_summary_reports_milliseconds_from_nanoseconds() -> None:
    summary = summarise_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    assert summary["p50"] == 2.5
    assert summary["mean"] == 2.5
    assert summary["p99"] == pytest.approx(3.97)


def test_summary_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no durations"):
        summarise_ns([])


# --- inference -------------------------------------------------------------------------------


def test_scripted_durations_give_exact_timings_and_speedup(small_model: Path) -> None:
    runs = 12
    # Per run: onnxruntime start, end, PyTorch start, end.
    timer = ScriptedTimer([500_000, GAP_NS, 3_500_000, GAP_NS])
    result = compare_inference(small_model, runs=runs, warmup=3, timer=timer)
    assert timer.calls == 4 * runs  # warm-up is not timed
    assert result["runs"] == runs
    assert result["onnxruntime_ms"] == {"p50": 0.5, "p99": 0.5, "mean": 0.5}
    assert result["torch_ms"] == {"p50": 3.5, "p99": 3.5, "mean": 3.5}
    assert result["speedup_p50"] == 7.0
    assert result["torch_skipped"] is None


def test_real_run_agrees_with_onnxruntime_on_one_thread(small_model: Path) -> None:
    torch = pytest.importorskip("torch")
    threads_before = torch.get_num_threads()
    result = compare_inference(small_model, runs=16, warmup=2)
    assert result["max_abs_diff_deg"] is not None
    assert result["max_abs_diff_deg"] < 0.01
    assert result["threads"] == 1
    assert result["model"].startswith("small.onnx@")
    assert result["onnxruntime_ms"]["p50"] > 0
    assert result["torch_ms"] is not None and result["torch_ms"]["p50"] > 0
    assert result["speedup_p50"] is not None and result["speedup_p50"] > 0
    assert torch.get_num_threads() == threads_before  # the thread count is put back
    json.dumps(result, allow_nan=False)


def test_without_torch_only_onnxruntime_is_timed(
    small_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    runs = 5
    timer = ScriptedTimer([250_000, GAP_NS])
    result = compare_inference(small_model, runs=runs, warmup=1, timer=timer)
    assert timer.calls == 2 * runs
    assert result["onnxruntime_ms"]["p50"] == 0.25
    assert result["torch_ms"] is None
    assert result["speedup_p50"] is None
    assert result["max_abs_diff_deg"] is None
    assert result["torch_skipped"] is not None and "torch" in result["torch_skipped"]
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize(("runs", "warmup"), [(0, 0), (5, -1)])
def test_bad_run_counts_are_refused_before_loading(tmp_path: Path, runs: int, warmup: int) -> None:
    with pytest.raises(ValueError, match=r"^(runs|warmup) = "):
        compare_inference(tmp_path / "not-there.onnx", runs=runs, warmup=warmup)


# --- weights ---------------------------------------------------------------------------------


def test_weights_load_into_a_network_of_the_same_spec(small_model: Path) -> None:
    torch = pytest.importorskip("torch")
    from emgd.model.network import EmgNet

    # The untrained network's zero biases are stored once in the file, the other keys as
    # Identity aliases of it: every key must still be loaded.
    source = EmgNet(ModelSpec(**SMALL_SPEC_KWARGS), seed=1)
    net = EmgNet(ModelSpec(**SMALL_SPEC_KWARGS), seed=99)
    assert load_onnx_weights(net, small_model) == len(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_weights_of_another_spec_are_refused_naming_the_key(small_model: Path) -> None:
    pytest.importorskip("torch")
    from emgd.model.network import EmgNet

    other = EmgNet(ModelSpec(**(SMALL_SPEC_KWARGS | {"mlp": (24, 8)})))
    with pytest.raises(ModelError, match=r"initializer 'head\.1\.weight' has shape \(16, \d+\)"):
        load_onnx_weights(other, small_model)


def test_a_stray_initializer_is_refused_naming_it(small_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from emgd.model.network import EmgNet

    path = rewritten_model(small_model, tmp_path / "stray.onnx", add="stray.weight")
    with pytest.raises(ModelError, match=r"initializer 'stray\.weight' matches no parameter"):
        load_onnx_weights(EmgNet(ModelSpec(**SMALL_SPEC_KWARGS)), path)


def test_only_untrained_tensors_may_lack_an_initializer(small_model: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from emgd.model.network import EmgNet

    path = rewritten_model(small_model, tmp_path / "no-bias.onnx", drop="head.1.bias")
    net = EmgNet(ModelSpec(**SMALL_SPEC_KWARGS))
    with pytest.raises(
        ModelError, match=r"no initializer for the trained parameter 'head\.1\.bias'"
    ):
        load_onnx_weights(net, path)
    # A fixed parameter, or a buffer, keeps the value the network was built with.
    net.head[1].bias.requires_grad_(False)
    net.register_buffer("extra_gain", torch.ones(1))
    assert load_onnx_weights(net, path) == len(net.state_dict()) - 2
    assert torch.equal(net.extra_gain, torch.ones(1))


# --- filters ---------------------------------------------------------------------------------


def test_scripted_filter_durations_give_the_ratio() -> None:
    runs = 100
    steps_ns: list[int] = []
    for i in range(runs):
        streaming_ns = 11_000_000 if i == runs - 1 else 1_000_000  # one slow hop at the end
        steps_ns += [streaming_ns, GAP_NS, 20_000_000, GAP_NS]
    timer = ScriptedTimer(steps_ns)
    result = compare_filters(default_contract(), runs=runs, warmup=4, timer=timer)
    assert timer.calls == 4 * runs
    assert result["streaming_ms"]["p50"] == 1.0
    assert result["streaming_ms"]["mean"] == 1.1
    assert result["streaming_ms"]["p99"] == pytest.approx(1.1)
    assert result["filtfilt_window_ms"] == {"p50": 20.0, "p99": 20.0, "mean": 20.0}
    assert result["ratio_p50"] == 20.0


def test_real_filters_streaming_is_cheaper_per_hop() -> None:
    contract = default_contract()
    result = compare_filters(contract, runs=40)
    assert set(result) == {
        "runs",
        "hop_samples",
        "window_samples",
        "n_channels",
        "streaming_ms",
        "filtfilt_window_ms",
        "ratio_p50",
    }
    assert result["runs"] == 40
    assert result["hop_samples"] == contract.hop_samples
    assert result["window_samples"] == contract.window_samples
    assert result["n_channels"] == 8
    for key in ("streaming_ms", "filtfilt_window_ms"):
        assert set(result[key]) == {"p50", "p99", "mean"}
    assert result["streaming_ms"]["p50"] > 0
    assert result["ratio_p50"] is not None and result["ratio_p50"] > 1
    json.dumps(result, allow_nan=False)


def test_the_hop_can_be_chosen() -> None:
    result = compare_filters(default_contract(), hop_samples=50, runs=3, warmup=0)
    assert result["hop_samples"] == 50


@pytest.mark.parametrize("hop_samples", [0, 10_000])
def test_a_hop_outside_the_window_is_refused(hop_samples: int) -> None:
    with pytest.raises(ValueError, match="hop_samples"):
        compare_filters(default_contract(), hop_samples=hop_samples, runs=3)


def test_each_hop_filters_its_block_and_refilters_the_whole_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import numpy as np
    from scipy import signal

    from emgd.dsp.filters import StreamingFilter, design_sos

    contract = default_contract()
    zero_phase_shapes: list[tuple[int, ...]] = []
    streamed_shapes: list[tuple[int, ...]] = []
    real_sosfiltfilt = signal.sosfiltfilt
    real_process = StreamingFilter.process

    def sosfiltfilt(sos: Any, x: Any, axis: int = -1) -> Any:
        np.testing.assert_array_equal(sos, design_sos(contract.filter_spec, 1000.0))
        zero_phase_shapes.append(x.shape)
        return real_sosfiltfilt(sos, x, axis=axis)

    def process(self: StreamingFilter, block: Any) -> Any:
        streamed_shapes.append(np.shape(block))
        return real_process(self, block)

    monkeypatch.setattr(signal, "sosfiltfilt", sosfiltfilt)
    monkeypatch.setattr(StreamingFilter, "process", process)
    compare_filters(contract, runs=5, warmup=2)
    window = (contract.window_samples, 8)
    assert zero_phase_shapes == [window] * 7
    # The opening window primes the streaming filter, then one hop block per hop.
    assert streamed_shapes == [window] + [(contract.hop_samples, 8)] * 7
