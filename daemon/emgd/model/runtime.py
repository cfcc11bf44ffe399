"""Running an exported model with onnxruntime: loading, metadata checks, one inference per hop.

This module owns :class:`OnnxModel`, the daemon's view of a model file: it loads the file
with onnxruntime (one intra-op thread, sequential execution, CPU), reads and validates the
emgd metadata (``emgd.spec``, ``emgd.contract``, ``emgd.card``, ``emgd.version``), checks the
graph's inputs and outputs against them, and runs one window at a time through preallocated
input and output buffers bound once, so the 20 ms hot path allocates nothing but the small
result. Every problem with a file becomes a :class:`~emgd.errors.ModelError` naming the file
and what is wrong. It must not import torch or onnx (the daemon has neither), filter,
normalise or decide what is commanded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError, MissingDependencyError, ModelError
from emgd.model.contract import PreprocessContract
from emgd.model.spec import ModelSpec

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

# --- the graph's interface (the names export.py gives it) ----------------------------------
EMG_INPUT = "emg"  # (1, C, W) float32, filtered and normalised, oldest sample first
HISTORY_INPUT = "history_deg"  # (1, history·5) float32, commanded degrees, newest first
OUTPUT = "angles_deg"  # (1, 5) float32, degrees
BATCH = 1

# --- metadata keys (values are JSON strings) ------------------------------------------------
META_SPEC = "emgd.spec"
META_CONTRACT = "emgd.contract"
META_CARD = "emgd.card"
META_VERSION = "emgd.version"
REQUIRED_META: tuple[str, ...] = (META_SPEC, META_CONTRACT, META_VERSION)
# Keys export.py adds to the spec dict next to ModelSpec.to_dict(): the resolved lengths.
RESOLVED_SPEC_KEYS: tuple[str, ...] = ("window_samples", "hop_samples")

IDENTITY_HASH_CHARS = 12  # sha256 hex digits shown in identity
INTRA_OP_THREADS = 1
INTER_OP_THREADS = 1
MAX_ERROR_DETAIL_CHARS = 160


def _short(text: object) -> str:
    line = " ".join(str(text).split())
    if len(line) > MAX_ERROR_DETAIL_CHARS:
        line = line[:MAX_ERROR_DETAIL_CHARS] + "…"
    return line


def _json_meta(path: Path, meta: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"{path}: metadata {key} is not valid JSON: {_short(exc)}") from None


def parse_spec_metadata(data: object, where: str) -> ModelSpec:
    """Rebuild the spec stored under ``emgd.spec`` and check its resolved lengths.

    Parameters
    ----------
    data:
        The parsed JSON: ``ModelSpec.to_dict()`` plus ``window_samples`` and ``hop_samples``.
    where:
        Names the file in messages.

    Raises
    ------
    ModelError
        When the spec does not parse, or the stored lengths disagree with the spec's.
    """
    if not isinstance(data, Mapping):
        raise ModelError(f"{where}: metadata {META_SPEC} is not an object")
    plain = {k: v for k, v in data.items() if k not in RESOLVED_SPEC_KEYS}
    try:
        spec = ModelSpec.from_dict(plain)
    except ConfigError as exc:
        raise ModelError(f"{where}: metadata {META_SPEC} does not parse: {exc}") from None
    resolved = {"window_samples": spec.window_samples, "hop_samples": spec.hop_samples}
    for key, value in resolved.items():
        if key in data and data[key] != value:
            raise ModelError(
                f"{where}: metadata {META_SPEC} {key} = {data[key]!r} but the spec gives {value}"
            )
    return spec


def file_identity(path: Path, data: bytes) -> str:
    """``name@sha256-prefix``: what logs and reports call a model file."""
    return f"{path.name}@{hashlib.sha256(data).hexdigest()[:IDENTITY_HASH_CHARS]}"


class OnnxModel:
    """A model file loaded for inference, with its spec, contract and card.

    Parameters
    ----------
    path:
        The ``.onnx`` file written by :func:`emgd.model.export.export_onnx`.

    Raises
    ------
    ModelError
        When the file is missing or unreadable, is not ONNX, lacks emgd metadata, its
        metadata does not parse or disagree with each other, or the graph's inputs and
        outputs are not ``emg (1, C, W)``, ``history_deg (1, 10)`` → ``angles_deg (1, 5)``.
    MissingDependencyError
        When onnxruntime is not installed.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{self._path}: model file not found") from None
        except IsADirectoryError:
            raise ModelError(f"{self._path}: is a directory, not a model file") from None
        except OSError as exc:
            raise ModelError(f"{self._path}: cannot read the model file: {_short(exc)}") from None
        self._identity = file_identity(self._path, data)
        self._size_bytes = len(data)
        self._session = self._open_session(data)
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        missing = [key for key in REQUIRED_META if key not in meta]
        if missing:
            raise ModelError(
                f"{self._path}: not an emgd model: ONNX metadata lacks {', '.join(missing)}"
            )
        version = _json_meta(self._path, meta, META_VERSION)
        if not isinstance(version, str):
            raise ModelError(f"{self._path}: metadata {META_VERSION} is not a string")
        self._version = version
        self._spec = parse_spec_metadata(_json_meta(self._path, meta, META_SPEC), str(self._path))
        try:
            self._contract = PreprocessContract.from_dict(
                _json_meta(self._path, meta, META_CONTRACT)
            )
            self._contract.check_spec(self._spec)
        except ModelError as exc:
            raise ModelError(f"{self._path}: {exc}") from None
        card: Any = _json_meta(self._path, meta, META_CARD) if META_CARD in meta else {}
        if not isinstance(card, dict):
            raise ModelError(f"{self._path}: metadata {META_CARD} is not an object")
        self._card: dict[str, Any] = card
        self._check_graph()
        spec = self._spec
        self._emg_in: Float32Array = np.zeros(
            (BATCH, spec.n_channels, self._contract.window_samples), dtype=np.float32
        )
        self._history_in: Float32Array = np.zeros((BATCH, spec.history_inputs), dtype=np.float32)
        self._out: Float32Array = np.zeros((BATCH, spec.n_outputs), dtype=np.float32)
        self._binding = self._bind()

    # -- loading -------------------------------------------------------------------------

    def _open_session(self, data: bytes) -> Any:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(
                "onnxruntime is not installed: pip install onnxruntime"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = INTRA_OP_THREADS
        options.inter_op_num_threads = INTER_OP_THREADS
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: no per-node warnings on the Pi
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise ModelError(f"{self._path}: not a loadable ONNX model: {_short(exc)}") from None

    def _check_graph(self) -> None:
        spec, contract = self._spec, self._contract
        expected_in = {
            EMG_INPUT: [BATCH, spec.n_channels, contract.window_samples],
            HISTORY_INPUT: [BATCH, spec.history_inputs],
        }
        inputs = {i.name: list(i.shape) for i in self._session.get_inputs()}
        outputs = {o.name: list(o.shape) for o in self._session.get_outputs()}
        if set(inputs) != set(expected_in):
            raise ModelError(
                f"{self._path}: graph inputs are {sorted(inputs)}, expected {sorted(expected_in)}"
            )
        for name, shape in expected_in.items():
            if inputs[name] != shape:
                raise ModelError(
                    f"{self._path}: input {name} has shape {inputs[name]}, the metadata "
                    f"implies {shape}"
                )
        expected_out = [BATCH, spec.n_outputs]
        if OUTPUT not in outputs or outputs[OUTPUT] != expected_out:
            raise ModelError(
                f"{self._path}: graph outputs are {outputs}, expected {OUTPUT} {expected_out}"
            )

    def _bind(self) -> Any:
        """Bind the preallocated buffers once; each inference then only refills them."""
        binding = self._session.io_binding()
        binding.bind_cpu_input(EMG_INPUT, self._emg_in)
        binding.bind_cpu_input(HISTORY_INPUT, self._history_in)
        binding.bind_output(
            OUTPUT,
            device_type="cpu",
            device_id=0,
            element_type=np.float32,
            shape=self._out.shape,
            buffer_ptr=self._out.ctypes.data,
        )
        return binding

    # -- what it is ----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def contract(self) -> PreprocessContract:
        return self._contract

    @property
    def card(self) -> dict[str, Any]:
        """The model card (training data, split, seed, metrics…); a copy."""
        return json.loads(json.dumps(self._card))  # type: ignore[no-any-return]

    @property
    def version(self) -> str:
        """The emgd version that exported the file."""
        return self._version

    @property
    def identity(self) -> str:
        """``file-name@sha256-prefix`` (12 hex digits), for logs and reports."""
        return self._identity

    @property
    def size_bytes(self) -> int:
        return self._size_bytes

    # -- running -------------------------------------------------------------------------

    def infer(self, window: npt.ArrayLike, history_deg: npt.ArrayLike) -> FloatArray:
        """Angles for one window.

        Parameters
        ----------
        window:
            Shape ``(W, C)``: filtered, normalised EMG, oldest sample first (the layout
            :class:`~emgd.dsp.window.Windower` returns).
        history_deg:
            Shape ``(history·5,)``: the previous commanded angle vectors, newest first.

        Returns
        -------
        numpy.ndarray
            Shape ``(5,)``, float64 degrees (a new array).

        Raises
        ------
        ModelError
            When a shape does not match the model.
        """
        frames = np.asarray(window)
        expected = (self._contract.window_samples, self._spec.n_channels)
        if frames.shape != expected:
            raise ModelError(
                f"{self._identity}: window shape {frames.shape}, the model expects {expected}"
            )
        history = np.asarray(history_deg)
        if history.shape != (self._spec.history_inputs,):
            raise ModelError(
                f"{self._identity}: history shape {history.shape}, the model expects "
                f"({self._spec.history_inputs},)"
            )
        np.copyto(self._emg_in[0], frames.T, casting="same_kind")
        np.copyto(self._history_in[0], history, casting="same_kind")
        self._session.run_with_iobinding(self._binding)
        angles: FloatArray = self._out[0].astype(np.float64)
        return angles
