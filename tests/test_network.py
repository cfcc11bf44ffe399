"""Tests of emgd.model.network: shapes, shared weights, fixed kernel, counts, ONNX parity."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import Generator, Tensor, nn  # noqa: E402

from emgd.errors import ModelError  # noqa: E402
from emgd.model.network import (  # noqa: E402
    INPUT_NAMES,
    OUTPUT_NAMES,
    EmgNet,
    FixedConv1d,
    conv1d_by_taps,
)
from emgd.model.spec import DEFAULT_BRANCHES, ModelSpec, Stage2Spec  # noqa: E402

# A small spec keeps the tests fast: 3 channels, T = 6, a narrow MLP.
SMALL = ModelSpec(n_channels=3, common_length=6, mlp=(16, 8))
BANDED = ModelSpec(n_channels=3, common_length=6, mlp=(16, 8), band_amplitude_s=0.05)


def _generator(seed: int) -> Generator:
    generator: Generator = torch.Generator().manual_seed(seed)
    return generator


def _inputs(
    spec: ModelSpec, batch: int, seed: int = 0, window: int | None = None
) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    samples = spec.window_samples if window is None else window
    emg = torch.randn(batch, spec.n_channels, samples, generator=generator)
    history = torch.rand(batch, spec.history_inputs, generator=generator) * 180.0
    return emg, history


def test_output_shape_and_bounds() -> None:
    net = EmgNet(SMALL, seed=1).eval()
    emg, history = _inputs(SMALL, batch=4)
    with torch.no_grad():
        out = net(emg, history)
        railed = net(emg * 1e6, history)
    assert out.shape == (4, 5)
    assert out.dtype == torch.float32
    for angles in (out, railed):
        assert torch.isfinite(angles).all()
        assert (angles >= 0.0).all() and (angles <= 180.0).all()
    assert ((out > 1.0) & (out < 179.0)).any()


def test_output_follows_the_angle_range() -> None:
    spec = ModelSpec(n_channels=2, common_length=4, mlp=(8,), angle_range_deg=(-20.0, 100.0))
    net = EmgNet(spec, seed=2).eval()
    emg, history = _inputs(spec, batch=64)
    with torch.no_grad():
        out = net(emg * 1e3, history)
    assert (out >= -20.0).all() and (out <= 100.0).all()
    assert (out < 0.0).any()  # only reachable because lo is -20


def test_history_is_scaled_to_unit_range_and_appended_channel_major() -> None:
    net = EmgNet(SMALL, seed=3).eval()
    emg, _ = _inputs(SMALL, batch=2)
    history = torch.tensor([[0.0, 45.0, 90.0, 135.0, 180.0] * 2] * 2)
    captured: list[Tensor] = []
    first_linear = next(m for m in net.head if isinstance(m, nn.Linear))
    first_linear.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    with torch.no_grad():
        net(emg, history)
        features = net.features(emg)
    flat = captured[0]
    assert flat.shape == (2, 3 * 4 * 4 * 6 + 10)
    expected_history = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0] * 2)
    torch.testing.assert_close(flat[0, -10:], expected_history)
    # Channel-major: channel 1, branch 2, feature 3, step 5 sits at ((1·4 + 2)·4 + 3)·6 + 5.
    assert flat[1, ((1 * 4 + 2) * 4 + 3) * 6 + 5] == features[1, 1, 2, 3, 5]


def test_history_changes_the_output() -> None:
    net = EmgNet(SMALL, seed=4).eval()
    emg, _ = _inputs(SMALL, batch=1)
    with torch.no_grad():
        rest = net(emg, torch.full((1, 10), 30.0))
        fist = net(emg, torch.full((1, 10), 180.0))
    assert not torch.allclose(rest, fist)


def test_layer_1_keeps_negative_values_and_later_layers_are_rectified() -> None:
    net = EmgNet(SMALL, seed=5).eval()
    emg, history = _inputs(SMALL, batch=2)
    first_out: dict[str, Tensor] = {}
    second_in: dict[str, Tensor] = {}
    third_in: dict[str, Tensor] = {}
    for branch in net.branch_modules:
        name = branch.name
        branch.layers[0].register_forward_hook(
            lambda _m, _a, out, name=name: first_out.__setitem__(name, out)
        )
        branch.layers[1].register_forward_pre_hook(
            lambda _m, args, name=name: second_in.__setitem__(name, args[0])
        )
        branch.layers[2].register_forward_pre_hook(
            lambda _m, args, name=name: third_in.__setitem__(name, args[0])
        )
    with torch.no_grad():
        net(emg, history)
    assert set(first_out) == {"type_I", "type_IIa", "type_IIb", "silence"}
    for name, out in first_out.items():
        assert (out < 0).any(), name
        assert (out > 0).any(), name
        # What layer 2 receives is layer 1's output untouched: no ReLU in between.
        assert (second_in[name] < 0).any(), name
        assert (third_in[name] >= 0).all(), name


def test_channel_permutation_permutes_the_features() -> None:
    spec = ModelSpec(n_channels=5, common_length=4, mlp=(8,))
    net = EmgNet(spec, seed=6).eval()
    emg, _ = _inputs(spec, batch=2)
    permutation = [3, 0, 4, 1, 2]
    with torch.no_grad():
        features = net.features(emg)
        permuted = net.features(emg[:, permutation])
    assert features.shape == (2, 5, 4, 4, 4)
    torch.testing.assert_close(permuted, features[:, permutation])
    assert not torch.allclose(features[:, 0], features[:, 1])


def test_conv_weights_do_not_grow_with_the_channel_count() -> None:
    def conv_parameters(n_channels: int) -> int:
        net = EmgNet(ModelSpec(n_channels=n_channels, common_length=4, mlp=(8,)))
        return sum(p.numel() for p in net.branches.parameters())

    assert conv_parameters(1) == conv_parameters(12) == 164 + 832


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(),
        ModelSpec(n_channels=10, sample_rate_hz=2000.0, history=1, mlp=(32,)),
        ModelSpec(branches=DEFAULT_BRANCHES[:2], stage2=Stage2Spec(strides=(1, 2), features=3)),
        ModelSpec(n_channels=2, dropout=0.3, common_length=7),
    ],
    ids=["seed", "10ch-2khz", "two-branches", "dropout"],
)
def test_parameter_count_equals_the_spec(spec: ModelSpec) -> None:
    net = EmgNet(spec)
    assert sum(p.numel() for p in net.parameters()) == spec.parameter_count()
    assert sum(b.numel() for b in net.buffers()) == spec.fixed_weight_count()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(ModelSpec(), 2_106_784), (ModelSpec(band_amplitude_s=0.5), None)],
    ids=["seed", "band-longer-than-the-branches"],
)
def test_macs_measured_on_the_module_equal_the_spec(spec: ModelSpec, expected: int | None) -> None:
    net = EmgNet(spec).eval()
    macs: list[int] = []

    def count(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        if isinstance(module, nn.Conv1d | FixedConv1d):
            weight = module.weight
            macs.append(out.numel() * weight.shape[1] * weight.shape[2])
        elif isinstance(module, nn.Linear):
            macs.append(out.numel() * module.in_features)

    for module in net.modules():
        module.register_forward_hook(count)
    emg, history = _inputs(spec, batch=1)
    with torch.no_grad():
        net(emg, history)
    assert sum(macs) == spec.macs_per_inference()
    if expected is not None:
        assert sum(macs) == expected
    else:  # the band window outgrows the branches': only the first layers run longer
        assert spec.macs_per_inference() > ModelSpec().macs_per_inference()


@pytest.mark.parametrize("fs_hz", [500.0, 1000.0, 2000.0])
def test_receptive_field_measured_by_gradient_equals_the_spec(fs_hz: float) -> None:
    spec = ModelSpec(sample_rate_hz=fs_hz, n_channels=1, common_length=3, mlp=(4,))
    net = EmgNet(spec).double()
    with torch.no_grad():
        for module in net.branches.modules():
            if isinstance(module, nn.Conv1d):
                module.weight.abs_()
                assert module.bias is not None
                module.bias.fill_(100.0)  # keeps every ReLU open, so every tap is seen
    for branch, plan in zip(net.branch_modules, spec.plans, strict=True):
        emg = torch.randn(1, 1, spec.window_samples, dtype=torch.float64, requires_grad=True)
        out = branch(emg.reshape(1, 1, -1))
        out[0, :, -1].sum().backward()
        assert emg.grad is not None
        touched = torch.nonzero(emg.grad[0, 0]).flatten()
        first, last = int(touched[0]), int(touched[-1])
        assert last == spec.window_samples - 1, plan.name  # ends at the newest sample
        assert last - first + 1 == plan.receptive_field_samples, plan.name
        assert out.shape == (1, 4, 3)


def test_silence_kernel_is_fixed_through_training() -> None:
    spec = ModelSpec(n_channels=2, common_length=4, mlp=(8,))
    net = EmgNet(spec, seed=7)
    silence = net.branch_modules[3]
    fixed = silence.layers[0]
    assert isinstance(fixed, FixedConv1d)
    assert fixed.weight.flatten().tolist() == [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    assert all(p is not fixed.weight for p in net.parameters())
    assert not any(key.startswith("branches.3.layers.0") for key in net.state_dict())
    second = silence.layers[1]
    assert isinstance(second, nn.Conv1d)
    before_trainable = second.weight.detach().clone()
    optimiser = torch.optim.SGD(net.parameters(), lr=1.0)
    emg, history = _inputs(spec, batch=3)
    loss = net(emg, history).sum()
    loss.backward()
    optimiser.step()
    assert fixed.weight.flatten().tolist() == [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    assert not torch.equal(second.weight, before_trainable)


def test_he_initialisation_with_zero_biases() -> None:
    net = EmgNet(ModelSpec(), seed=8)
    first = next(m for m in net.head if isinstance(m, nn.Linear))
    assert first.weight.std().item() == pytest.approx(math.sqrt(2.0 / 6410), rel=0.05)
    for module in net.modules():
        if isinstance(module, nn.Conv1d | nn.Linear):
            assert module.bias is not None
            assert not module.bias.any()
    # Same seed, same weights; another seed, other weights.
    again = EmgNet(ModelSpec(), seed=8)
    other = EmgNet(ModelSpec(), seed=9)
    assert torch.equal(first.weight, next(m for m in again.head if isinstance(m, nn.Linear)).weight)
    assert not torch.equal(
        first.weight, next(m for m in other.head if isinstance(m, nn.Linear)).weight
    )


def test_signal_does_not_vanish_through_the_branches() -> None:
    net = EmgNet(ModelSpec(n_channels=4), seed=10).eval()
    emg, _ = _inputs(net.spec, batch=2)
    with torch.no_grad():
        features = net.features(emg)
    for index, name in enumerate(("type_I", "type_IIa", "type_IIb", "silence")):
        assert features[:, :, index].std().item() > 0.05, name


def test_longer_window_gives_the_same_angles_as_its_newest_part() -> None:
    net = EmgNet(SMALL, seed=11).eval()
    emg, history = _inputs(SMALL, batch=2, window=SMALL.min_window_samples + 333)
    with torch.no_grad():
        long = net(emg, history)
        short = net(emg[..., -SMALL.min_window_samples :], history)
    torch.testing.assert_close(long, short)


def test_streaming_features_match_the_window_features() -> None:
    net = EmgNet(SMALL, seed=12).eval()
    emg, _ = _inputs(SMALL, batch=1)
    with torch.no_grad():
        windowed = net.features(emg)
        for index, branch in enumerate(net.branch_modules):
            plan = SMALL.plans[index]
            # Step j of a stream ends at its sample R - 1 + j·S: start the stream so that one
            # step ends at the window's newest sample (1465 - 586 is odd for type IIa).
            start = (SMALL.window_samples - plan.receptive_field_samples) % plan.total_stride
            stream = branch.run_layers(emg[0, :, start:].reshape(-1, 1, emg.shape[-1] - start))
            torch.testing.assert_close(stream[:, :, -1], windowed[0, :, index, :, -1])
            torch.testing.assert_close(stream[:, :, -6:], windowed[0, :, index])
    assert [p.total_stride for p in SMALL.plans] == [1, 2, 6, 2]


@pytest.mark.parametrize(
    ("emg_shape", "history_shape", "fragment"),
    [
        ((1, 2, 1729), (1, 10), "expected (batch, 3 channels"),
        ((1, 3, 1000), (1, 10), "1000 samples is shorter than the 1465"),
        ((1, 3, 1465), (1, 5), "history input has shape (1, 5), expected (batch, 10)"),
    ],
)
def test_bad_inputs_are_named(
    emg_shape: tuple[int, ...], history_shape: tuple[int, ...], fragment: str
) -> None:
    net = EmgNet(SMALL)
    with pytest.raises(ModelError) as info:
        net(torch.zeros(emg_shape), torch.zeros(history_shape))
    assert fragment in str(info.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("banded", [False, True], ids=["seed", "band-amplitudes"])
def test_onnx_export_matches_pytorch(banded: bool) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    spec = ModelSpec(band_amplitude_s=0.2) if banded else ModelSpec()
    net = EmgNet(spec, seed=13).eval()
    if banded:  # a standardisation that is not the identity, as after training
        raw = torch.randn(50, spec.n_channels, len(spec.plans), generator=_generator(15))
        net.set_band_standardisation(raw * 0.3 - 2.0)
    emg, history = _inputs(spec, batch=3, seed=14)
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (emg, history),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        dynamic_axes={"emg": {0: "batch"}, "history_deg": {0: "batch"}, "angles_deg": {0: "batch"}},
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = net(emg, history).numpy()
    for batch in (1, 3):
        (got,) = session.run(
            None, {"emg": emg[:batch].numpy(), "history_deg": history[:batch].numpy()}
        )
        assert got.shape == (batch, 5)
        assert np.max(np.abs(got - expected[:batch])) < 1e-3
    assert ((expected > 1.0) & (expected < 179.0)).any()  # not all railed: a real comparison


@pytest.mark.parametrize(
    ("stride", "dilation", "with_bias"), [(1, 1, True), (2, 3, False), (3, 7, True)]
)
def test_conv_by_taps_is_conv1d(stride: int, dilation: int, with_bias: bool) -> None:
    generator = torch.Generator().manual_seed(stride + dilation)
    x = torch.randn(5, 1, 300, generator=generator)
    weight = torch.randn(1, 1, 9, generator=generator)
    bias = torch.randn(1, generator=generator) if with_bias else None
    want = torch.nn.functional.conv1d(x, weight, bias, stride=stride, dilation=dilation)
    got = conv1d_by_taps(x, weight, bias, stride=stride, dilation=dilation)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)


def test_branches_by_taps_give_conv_outputs_and_gradients() -> None:
    """Training's faster single-map path: same features, same weight gradients."""
    net = EmgNet(ModelSpec(n_channels=2, common_length=4, mlp=(8,)), seed=3)
    x = torch.randn(4, 1, 2500, generator=torch.Generator().manual_seed(0))
    for branch in net.branch_modules:
        results = []
        for by_taps in (False, True):
            branch.zero_grad()
            maps = branch.run_layers(x, by_taps=by_taps)
            (maps * torch.linspace(-1.0, 1.0, maps.shape[-1])).sum().backward()
            grads = [p.grad.clone() for p in branch.parameters() if p.grad is not None]
            results.append((maps.detach(), grads))
        (conv_maps, conv_grads), (taps_maps, taps_grads) = results
        assert torch.allclose(taps_maps, conv_maps, rtol=1e-4, atol=1e-4), branch.name
        assert len(taps_grads) == len(conv_grads) > 0
        for got, want in zip(taps_grads, conv_grads, strict=True):
            assert torch.allclose(got, want, rtol=1e-3, atol=1e-3 * float(want.abs().max())), (
                branch.name
            )


def test_band_amplitude_is_the_log_mean_rectified_first_layer_by_hand() -> None:
    spec = BANDED
    net = EmgNet(spec, seed=5).eval()
    raw = torch.randn(40, spec.n_channels, len(spec.plans), generator=_generator(6))
    net.set_band_standardisation(raw)
    torch.testing.assert_close(net.band_mean, raw.mean(0))
    torch.testing.assert_close(net.band_scale, raw.std(0))
    emg, _ = _inputs(spec, batch=2, seed=7, window=spec.window_samples + 11)
    with torch.no_grad():
        flat = net.flat_features(emg)
    n_maps = spec.feature_count - spec.band_feature_count
    torch.testing.assert_close(flat[:, :n_maps], net.features(emg).flatten(1))
    got = flat[:, n_maps:].reshape(2, spec.n_channels, len(spec.plans))
    for b, (branch, plan) in enumerate(zip(net.branch_modules, spec.plans, strict=True)):
        first = plan.layers[0]
        layer = branch.layers[0]
        # 50 ms at 1 kHz: 50 first-layer steps at stride 1, 25 at stride 2.
        steps = 50 // first.stride
        assert spec.band_steps(plan) == steps
        bias = layer.bias if isinstance(layer, nn.Conv1d) else None
        for c in range(spec.n_channels):
            # The last output step must end at the newest sample (crop to a stride multiple).
            offset = (emg.shape[-1] - 1 - first.span_samples) % first.stride
            y = torch.nn.functional.conv1d(
                emg[:, c : c + 1, offset:],
                layer.weight,
                bias,
                stride=first.stride,
                dilation=first.dilation,
            )
            mean_abs = y[:, 0, -steps:].abs().mean(dim=-1)
            want = (torch.log(mean_abs + 1e-3) - raw[:, c, b].mean()) / raw[:, c, b].std()
            torch.testing.assert_close(got[:, c, b], want.detach(), rtol=1e-4, atol=1e-4)


def test_band_amplitudes_see_the_amplitude_of_the_newest_samples_only() -> None:
    spec = BANDED
    net = EmgNet(spec, seed=8).eval()
    emg, _ = _inputs(spec, batch=1, seed=9)
    louder = emg.clone()
    louder[..., -10:] *= 4.0  # inside every branch's 50 ms band window
    older = emg.clone()
    older[..., :-200] *= 4.0  # before every band window (at most 50 ms plus the first span)
    n_maps = spec.feature_count - spec.band_feature_count
    with torch.no_grad():
        base = net.flat_features(emg)[0, n_maps:]
        assert (net.flat_features(louder)[0, n_maps:] > base).all()
        torch.testing.assert_close(net.flat_features(older)[0, n_maps:], base)


def test_band_standardisation_of_the_wrong_shape_is_refused() -> None:
    net = EmgNet(BANDED, seed=0)
    with pytest.raises(ModelError, match=r"do not fit the standardisation of shape \(3, 4\)"):
        net.set_band_standardisation(torch.zeros(10, 4, 4))
