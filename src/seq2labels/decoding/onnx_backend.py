"""Decode with ONNX Runtime: the exported SGM encoder and decoder step behind ``StepModel``.

:func:`seq2labels.pipeline.export.export_onnx` writes two graphs, the encoder (``SGM.start``) and one
decoder step (``SGM.step``). :class:`OnnxStepModel` runs them and speaks the same
``start``/``step`` protocol as the torch model, converting tensors to numpy and back at the
boundary, so :func:`~seq2labels.decoding.greedy_decode` and
:func:`~seq2labels.decoding.beam_decode` stay the only search code: beam bookkeeping, the
forbidden mask and the state reordering all still happen in torch.

Loading runs no code from the folder: the manifest is JSON, the graphs are ONNX protobufs
(data), and each graph's SHA-256 is checked against the manifest before it is used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seq2labels.errors import ModelFormatError, Seq2LabelsError

MANIFEST = "manifest.json"
FORMAT_NAME = "seq2labels-onnx"
FORMAT_VERSION = 1
# Graph input/output names (the manifest lists them too). Static and state tensors are named
# "static.<key>" / "state.<key>" after the keys of SGM.start's dicts; a step's new state is
# "next.<key>" (ONNX value names must be unique within a graph).
SRC, SRC_LENGTHS = "src", "src_lengths"
PREV_LABELS, FORBIDDEN = "prev_labels", "forbidden"
LOG_PROBS, ATTENTION = "log_probs", "attention"
STATIC, STATE, NEXT = "static.", "state.", "next."


class MissingDependencyError(Seq2LabelsError, ImportError):
    """An optional package is not installed; the message names the pip extra."""


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("the onnxruntime backend needs onnxruntime: "
                                     "pip install 'seq2labels[onnx]'") from None
    return onnxruntime


class OnnxStepModel:
    """``StepModel`` over two ONNX Runtime sessions (CPU); tensors cross as numpy arrays."""

    def __init__(self, encoder, step, manifest: dict):
        self._encoder = encoder
        self._step = step
        self.manifest = manifest
        self.num_outputs = int(manifest["num_outputs"])
        self.static_names: list[str] = list(manifest["static"])
        self.state_names: list[str] = list(manifest["state"])
        self._encoder_outputs = [o.name for o in encoder.get_outputs()]
        self._step_inputs = [i.name for i in step.get_inputs()]
        self._step_outputs = [o.name for o in step.get_outputs()]
        self.device = torch.device("cpu")

    def start(self, src: Tensor, src_lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        outputs = self._encoder.run(self._encoder_outputs, {SRC: _to_numpy(src), SRC_LENGTHS: _to_numpy(src_lengths)})
        named = dict(zip(self._encoder_outputs, outputs))
        static = {n: torch.from_numpy(named[STATIC + n]) for n in self.static_names}
        state = {n: torch.from_numpy(named[STATE + n]) for n in self.state_names}
        return static, state

    def step(self, prev_labels: Tensor, state: dict[str, Tensor], static: dict[str, Tensor],
             forbidden: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        feeds = {}
        for name in self._step_inputs:   # the exporter drops static inputs a step never reads
            feeds[name] = _to_numpy(_feed(name, prev_labels, state, static, forbidden))
        named = dict(zip(self._step_outputs, self._step.run(self._step_outputs, feeds)))
        new_state = {n: torch.from_numpy(named[NEXT + n]) for n in self.state_names}
        return torch.from_numpy(named[LOG_PROBS]), new_state, torch.from_numpy(named[ATTENTION])


def _feed(name: str, prev_labels: Tensor, state: dict[str, Tensor], static: dict[str, Tensor],
          forbidden: Tensor) -> Tensor:
    if name == PREV_LABELS:
        return prev_labels
    if name == FORBIDDEN:
        return forbidden
    if name.startswith(STATE):
        return state[name[len(STATE):]]
    if name.startswith(STATIC):
        return static[name[len(STATIC):]]
    raise ModelFormatError(f"decoder step graph has an unexpected input {name!r}")


def _to_numpy(tensor: Tensor) -> np.ndarray:
    """Zero-copy for contiguous CPU tensors; ORT wants C-contiguous buffers."""
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


def session_options(threads: int | None):
    """One intra-op pool of ``threads`` (default: torch's count, so --threads and OMP_NUM_THREADS apply)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def step_model_from_graphs(encoder: bytes, step: bytes, manifest: dict, threads: int | None = None) -> OnnxStepModel:
    """Sessions over serialized graphs (from a folder, or straight from an in-memory export)."""
    ort = import_onnxruntime()
    options = session_options(threads)
    providers = ["CPUExecutionProvider"]
    return OnnxStepModel(ort.InferenceSession(encoder, options, providers=providers),
                         ort.InferenceSession(step, options, providers=providers), manifest)


def read_manifest(folder: str | Path) -> dict:
    """The export's manifest.json, checked for format and version."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{folder}: no ONNX export here ({MANIFEST} is missing); "
                               "run `seq2labels export MODEL --format onnx` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path}: not a seq2labels ONNX manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path}: ONNX export format version {manifest.get('format_version')!r} is not "
                               f"supported (this seq2labels reads version {FORMAT_VERSION}); export the model again")
    for key in ("graphs", "static", "state", "num_outputs", "weights_sha256"):
        if key not in manifest:
            raise ModelFormatError(f"{path}: field {key!r} is missing")
    return manifest


def _read_graph(folder: Path, entry: dict, name: str) -> bytes:
    try:
        path = folder / Path(entry["file"]).name   # a bare file name: never read outside the folder
        data = path.read_bytes()
    except (KeyError, TypeError):
        raise ModelFormatError(f"{folder / MANIFEST}: field 'graphs.{name}.file' is missing") from None
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: missing (listed in {MANIFEST})") from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ModelFormatError(f"{path}: SHA-256 differs from {MANIFEST} (a partial or mixed export?); "
                               "export the model again")
    return data


def load_onnx_step_model(folder: str | Path, *, weights_sha256: str | None = None,
                         threads: int | None = None) -> OnnxStepModel:
    """Open an export folder; with ``weights_sha256``, refuse an export of other weights."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if weights_sha256 is not None and manifest["weights_sha256"] != weights_sha256:
        raise ModelFormatError(f"{folder}: this ONNX export was made from other weights than the model's "
                               "(the model was retrained or replaced); export it again")
    graphs = manifest["graphs"]
    if not isinstance(graphs, dict) or not {"encoder", "decoder_step"} <= set(graphs):
        raise ModelFormatError(f"{folder / MANIFEST}: field 'graphs' must name 'encoder' and 'decoder_step'")
    encoder = _read_graph(folder, graphs["encoder"], "encoder")
    step = _read_graph(folder, graphs["decoder_step"], "decoder_step")
    try:
        return step_model_from_graphs(encoder, step, manifest, threads)
    except Seq2LabelsError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        raise ModelFormatError(f"{folder}: onnxruntime cannot load the graphs ({exc})") from None
