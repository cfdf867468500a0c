"""Export a trained SGM to ONNX: the encoder and ONE decoder step, as two graphs.

Search (greedy and beam) stays in Python (:mod:`seq2labels.decoding`); only the network
moves to ONNX, so the ONNX Runtime backend
(:class:`seq2labels.decoding.onnx_backend.OnnxStepModel`) decodes with exactly the code the
torch model uses. Graphs have dynamic batch (rows = batch x beam) and time axes.

Exporter: torch 2.13's default ``torch.onnx.export(dynamo=True)`` needs the onnxscript
package, which the ``onnx`` extra does not pull in; the TorchScript-based exporter
(``dynamo=False``) is built into torch, maps the encoder's ``nn.LSTM``/``nn.GRU`` to ONNX's
LSTM/GRU ops and the decoder's ``nn.LSTMCell`` to its gate arithmetic (Gemm, Sigmoid, Tanh),
and every export is checked against the torch model at another batch size and length than
the traced ones (see :func:`verify_export`). torch marks it deprecated, so its warning is
silenced only around the export call. The dynamo exporter, tried with onnxscript 0.7.2,
rejected ``dynamic_axes`` for these graphs and, given ``dynamic_shapes``, produced encoders
(with and without self-attention) that fail in ONNX Runtime at any batch/length other than
the traced one (an Expand to the traced shape).

One export-time substitution: ``nn.MultiheadAttention`` (the ``self_attention`` option)
traces the example's length into a Reshape, so the graph would only run at that length;
it is replaced, in a copy of the model, by :class:`_TraceableSelfAttention`, the same
arithmetic on the same weights with shapes read at run time.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2labels._version import __version__
from seq2labels.utils.atomic import atomic_write_bytes, atomic_write_json
from seq2labels.decoding import onnx_backend as ob
from seq2labels.errors import ConfigError, ModelFormatError

log = logging.getLogger(__name__)

OPSET = 17
EXPORTER = "torch.onnx.export(dynamo=False), TorchScript-based"
FORMATS = ("onnx",)
VERIFY_TOLERANCE = 1e-4


# ---- graphs ----------------------------------------------------------------------------

class _EncoderGraph(nn.Module):
    """``SGM.start`` with its two dicts flattened into named outputs (ONNX has no dicts)."""

    def __init__(self, model: nn.Module, static_names: list[str], state_names: list[str]):
        super().__init__()
        self.model = model
        self.static_names = static_names
        self.state_names = state_names

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, ...]:
        static, state = self.model.start(src, src_lengths)
        return (*(static[n] for n in self.static_names), *(state[n] for n in self.state_names))


class _StepGraph(nn.Module):
    """``SGM.step`` with flat inputs: prev labels, forbidden mask, state tensors, static tensors."""

    def __init__(self, model: nn.Module, static_names: list[str], state_names: list[str]):
        super().__init__()
        self.model = model
        self.static_names = static_names
        self.state_names = state_names

    def forward(self, prev_labels: Tensor, forbidden: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        k = len(self.state_names)
        state = dict(zip(self.state_names, tensors[:k]))
        static = dict(zip(self.static_names, tensors[k:]))
        log_probs, new_state, attention = self.model.step(prev_labels, state, static, forbidden)
        return (log_probs, *(new_state[n] for n in self.state_names), attention)


class _TraceableSelfAttention(nn.Module):
    """``nn.MultiheadAttention`` as the encoder calls it (batch_first self-attention with a key
    padding mask, eval mode), with every shape taken from the input when the graph runs."""

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        if not attention.batch_first or not attention._qkv_same_embed_dim or attention.bias_k is not None:
            raise ConfigError("ONNX export supports the encoder's own self-attention layout only")
        self.attention = attention

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor,
                need_weights: bool = False) -> tuple[Tensor, None]:
        att = self.attention
        heads, dim = att.num_heads, att.embed_dim
        head_dim = dim // heads
        q, k, v = F.linear(query, att.in_proj_weight, att.in_proj_bias).chunk(3, dim=-1)  # (batch, time, dim) x3

        def split(x: Tensor) -> Tensor:
            return x.reshape(x.size(0), -1, heads, head_dim).transpose(1, 2)   # (batch, heads, time, head_dim)

        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(head_dim)   # (batch, heads, time, time)
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        mixed = torch.softmax(scores, dim=-1) @ split(v)                       # (batch, heads, time, head_dim)
        mixed = mixed.transpose(1, 2).reshape(query.size(0), -1, dim)          # (batch, time, dim)
        return att.out_proj(mixed), None


def _exportable_copy(model: nn.Module) -> nn.Module:
    """A CPU, eval-mode copy with the self-attention swapped for its traceable twin."""
    clone = copy.deepcopy(model).to("cpu").eval()
    if getattr(clone.encoder, "self_attn", None) is not None:
        clone.encoder.self_attn = _TraceableSelfAttention(clone.encoder.self_attn)
    return clone


def weights_sha256(model: nn.Module) -> str:
    """A fingerprint of the weights (names, dtypes, shapes, bytes): ties an export to its model."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        value = value.detach().to("cpu").contiguous()
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _sample_batch(model: nn.Module, batch: int = 3, time: int = 7) -> tuple[Tensor, Tensor]:
    """Seeded token ids of uneven lengths (the longest fills the time axis)."""
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    src = torch.randint(2 if vocab > 2 else 0, vocab, (batch, time), generator=generator)  # (batch, time)
    lengths = torch.tensor([time, max(1, time - 3), 1][:batch] + [time] * max(0, batch - 3))  # (batch,)
    steps = torch.arange(time)[None, :]                                                    # (1, time)
    return src.masked_fill(steps >= lengths[:, None], 0), lengths


def _sample_step_inputs(model: nn.Module, src: Tensor, lengths: Tensor):
    """Inputs of a step at a non-trivial point: after BOS, with a couple of labels forbidden."""
    static, state = model.start(src, lengths)
    batch, num_outputs = src.size(0), model.config.num_outputs
    prev = torch.full((batch,), 1, dtype=torch.long)                      # (batch,) BOS
    forbidden = torch.zeros(batch, num_outputs, dtype=torch.bool)         # (batch, V)
    forbidden[:, :2] = True                                               # PAD, BOS
    forbidden[0, -1] = True                                               # a label already emitted
    return static, state, prev, forbidden


def _export(module: nn.Module, args: tuple, input_names: list[str], output_names: list[str],
            dynamic_axes: dict[str, dict[int, str]], opset: int) -> bytes:
    """Trace ``module`` in eval mode. The exporter restores the wrapper's train/eval flag
    afterwards, recursively: the wrapper must already be in eval mode or it would leave the
    wrapped model training (dropout on)."""
    module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)   # the legacy exporter's notice
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # "batch_size other than 1 ... with LSTM": the RNN ops get no initial state, so the
        # batch size is not baked in (verify_export runs another batch size to prove it)
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        torch.onnx.export(module, args, buffer, dynamo=False, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True)
    return buffer.getvalue()


def _axes(names: list[str], tensors: list[Tensor]) -> dict[str, dict[int, str]]:
    """Dim 0 is rows (batch x beam) everywhere; a second dim that is the source length is time."""
    return {name: {0: "rows", **({1: "time"} if t.dim() >= 2 and name.split(".")[-1] in
                                 ("memory", "mask", "keys") else {})}
            for name, t in zip(names, tensors)}


def export_graphs(model: nn.Module, opset: int = OPSET) -> tuple[bytes, bytes, dict]:
    """Serialize the encoder and decoder step; returns (encoder, step, manifest without file entries)."""
    _check_exportable(model)
    encoder, step, manifest = _export_graphs(_exportable_copy(model), opset)
    manifest["weights_sha256"] = weights_sha256(model)   # of the model as saved (the copy renames a module)
    return encoder, step, manifest


def _check_exportable(model: nn.Module) -> None:
    """Only the rnn encoder has an ONNX graph here; a pretrained transformer's windowing and
    Hugging Face internals are not exported (decode it with the torch backend)."""
    encoder = getattr(getattr(model, "config", None), "encoder", "rnn")
    if encoder != "rnn":
        raise ConfigError(f"ONNX export supports the rnn encoder only, and this model's encoder is {encoder!r}; "
                          "decode it with the torch backend (optionally --precision bf16)")


def _export_graphs(model: nn.Module, opset: int) -> tuple[bytes, bytes, dict]:
    src, lengths = _sample_batch(model)
    with torch.no_grad():
        static, state, prev, forbidden = _sample_step_inputs(model, src, lengths)
    static_names, state_names = list(static), list(state)

    enc_inputs = [ob.SRC, ob.SRC_LENGTHS]
    enc_outputs = [ob.STATIC + n for n in static_names] + [ob.STATE + n for n in state_names]
    enc_axes = {ob.SRC: {0: "rows", 1: "time"}, ob.SRC_LENGTHS: {0: "rows"},
                **_axes(enc_outputs, [*static.values(), *state.values()])}
    encoder = _export(_EncoderGraph(model, static_names, state_names), (src, lengths),
                      enc_inputs, enc_outputs, enc_axes, opset)

    step_inputs = [ob.PREV_LABELS, ob.FORBIDDEN, *(ob.STATE + n for n in state_names),
                   *(ob.STATIC + n for n in static_names)]
    step_outputs = [ob.LOG_PROBS, *(ob.NEXT + n for n in state_names), ob.ATTENTION]
    step_axes = {ob.PREV_LABELS: {0: "rows"}, ob.FORBIDDEN: {0: "rows"}, ob.LOG_PROBS: {0: "rows"},
                 ob.ATTENTION: {0: "rows", 1: "time"},
                 **_axes(step_inputs[2:], [*state.values(), *static.values()]),
                 **_axes(step_outputs[1:-1], list(state.values()))}
    step = _export(_StepGraph(model, static_names, state_names),
                   (prev, forbidden, *state.values(), *static.values()), step_inputs, step_outputs, step_axes, opset)

    manifest = {
        "format": ob.FORMAT_NAME, "format_version": ob.FORMAT_VERSION,
        "seq2labels_version": __version__, "torch_version": torch.__version__,
        "exporter": EXPORTER, "opset": opset,
        "num_outputs": int(model.config.num_outputs), "model": model.config.to_dict(),
        "static": static_names, "state": state_names,
        "graphs": {"encoder": {"inputs": enc_inputs, "outputs": enc_outputs},
                   "decoder_step": {"inputs": step_inputs, "outputs": step_outputs}},
    }
    return encoder, step, manifest


def verify_export(model: nn.Module, step_model: ob.OnnxStepModel, tolerance: float = VERIFY_TOLERANCE) -> float:
    """Run the encoder and two decoder steps in torch and ONNX Runtime on a longer batch than the
    one traced (so dynamic axes are exercised); raise if any output differs by more than
    ``tolerance``. Returns the largest absolute difference."""
    model = copy.deepcopy(model).to("cpu").eval()
    src, lengths = _sample_batch(model, batch=4, time=11)
    worst = 0.0
    with torch.no_grad():
        static, state, prev, forbidden = _sample_step_inputs(model, src, lengths)
        o_static, o_state = step_model.start(src, lengths)
        for name in static:
            worst = max(worst, _max_diff(static[name], o_static[name]))
        for _ in range(2):
            log_probs, state, attn = model.step(prev, state, static, forbidden)
            o_log_probs, o_state, o_attn = step_model.step(prev, o_state, o_static, forbidden)
            worst = max(worst, _max_diff(log_probs, o_log_probs), _max_diff(attn, o_attn),
                        *(_max_diff(state[n], o_state[n]) for n in state))
            prev = log_probs.argmax(dim=1)                                # (batch,)
            forbidden = forbidden | torch.nn.functional.one_hot(prev, forbidden.size(1)).bool()
    if not worst <= tolerance:
        raise ModelFormatError(f"the ONNX export disagrees with the torch model by {worst:.3g} "
                               f"(> {tolerance:g}); please report this with the model's config.json")
    return worst


def _max_diff(a: Tensor, b: Tensor) -> float:
    """Max |a - b| where both are finite; a -inf in one and not the other counts as infinite."""
    a, b = a.float(), b.float()
    if a.shape != b.shape:
        return float("inf")
    same_inf = torch.isinf(a) & torch.isinf(b) & (torch.sign(a) == torch.sign(b))
    diff = (a - b).abs().masked_fill(same_inf, 0.0)
    return float(diff.max()) if diff.numel() else 0.0


def in_memory_step_model(model: nn.Module, threads: int | None = None) -> ob.OnnxStepModel:
    """Export to memory and open ONNX Runtime sessions on the result (no files written)."""
    ob.import_onnxruntime()
    encoder, step, manifest = export_graphs(model)
    step_model = ob.step_model_from_graphs(encoder, step, manifest, threads)
    verify_export(model, step_model)
    return step_model


def export_onnx(generator, out: str | Path, *, opset: int = OPSET) -> Path:
    """Write encoder.onnx, decoder_step.onnx and manifest.json into ``out``; returns ``out``.

    Each file is written atomically; the manifest comes last and holds every graph's
    SHA-256, so a reader never mixes graphs from two exports. The export is checked against
    the torch model with ONNX Runtime before the manifest is written.
    """
    ob.import_onnxruntime()
    if generator.quantized:
        raise ConfigError("cannot export an int8-quantized model to ONNX; export the float model")
    model = generator.model
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    encoder, step, manifest = export_graphs(model, opset)
    step_model = ob.step_model_from_graphs(encoder, step, manifest)
    manifest["verified_max_abs_diff"] = verify_export(model, step_model)
    for key, name, data in (("encoder", "encoder.onnx", encoder), ("decoder_step", "decoder_step.onnx", step)):
        atomic_write_bytes(out / name, data)
        manifest["graphs"][key].update(file=name, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    atomic_write_json(out / ob.MANIFEST, manifest)
    log.info("wrote ONNX encoder and decoder step to %s (max |torch - onnxruntime| = %.2g)", out,
             manifest["verified_max_abs_diff"])
    return out


# ---- backends for LabelGenerator ------------------------------------------------------------

BACKENDS = ("torch", "onnxruntime")


def backend_step_model(generator, backend: str, *, onnx_dir: str | Path | None = None,
                       threads: int | None = None) -> ob.OnnxStepModel | None:
    """What ``LabelGenerator.with_backend`` decodes with: None for torch (the model itself), else an
    ONNX Runtime step model, from ``onnx_dir`` when given (checked to be an export of these very
    weights) or exported in memory."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend == "torch":
        if onnx_dir is not None:
            raise ConfigError("onnx_dir is only used by the onnxruntime backend")
        return None
    if generator.quantized:
        raise ConfigError("the onnxruntime backend runs the float model; do not combine it with "
                          f"{generator.quantized} quantization")
    if onnx_dir is None:
        return in_memory_step_model(generator.model, threads)
    return ob.load_onnx_step_model(onnx_dir, weights_sha256=weights_sha256(generator.model), threads=threads)
