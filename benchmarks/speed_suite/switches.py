"""Decoding switches (beam 5, batch 256, decoding only): each benchmark-side switch against the default.

Every switch patches package state only inside its context manager and restores it on exit:
``seq2labels.decoding.search`` (``bool``, early stop), ``seq2labels.models.attention.ENERGY_CHUNK_ELEMENTS``
(set to ``ONE_PIECE``, read from this module at call time) and ``seq2labels.models.encoders.rnn``
(``reverse_rows``, ``Encoder.memory_zero_on_padding``).
"""

from __future__ import annotations

import builtins
import contextlib
import math

from .harness import PRECISIONS, load_test, micro_f1, same_labels, set_threads, timed_interleaved

ONE_PIECE = 1 << 62                           # seq2labels.models.attention.ENERGY_CHUNK_ELEMENTS: no slicing


class CountingStepModel:
    """Wraps a StepModel and counts decoder steps and the hypothesis rows they ran on.

    ``share_static=False`` reports ``static_per_example = False`` whatever the model says, so beam
    search copies the encoder outputs once per hypothesis (the way before the models shared them).
    """

    def __init__(self, model, share_static: bool = True):
        self._model = model
        self.static_per_example = share_static and bool(getattr(model, "static_per_example", False))
        self.steps = 0
        self.rows = 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def start(self, src, src_lengths):
        return self._model.start(src, src_lengths)

    def step(self, prev_labels, state, static, forbidden):
        self.steps += 1
        self.rows += int(prev_labels.shape[0])
        return self._model.step(prev_labels, state, static, forbidden)


@contextlib.contextmanager
def without_early_stop():
    """Benchmark-only: decoding's "every hypothesis has ended" check never fires, so every batch
    runs all max_labels steps (finished hypotheses extend with PAD at zero cost; results are
    unchanged, which the suite checks). Done by shadowing ``bool`` inside seq2labels.decoding.search
    for 0-dim bool tensors only."""
    from seq2labels.decoding import search

    def never_all_done(value):
        if hasattr(value, "dim") and value.dim() == 0 and str(value.dtype) == "torch.bool":
            return False
        return builtins.bool(value)

    search.bool = never_all_done
    try:
        yield
    finally:
        del search.bool


@contextlib.contextmanager
def energy_in_one_piece():
    """Benchmark-only: SGM attention builds its energy tensor in one piece instead of in slices of
    ``ENERGY_CHUNK_ELEMENTS`` floats (read at call time); restored on exit."""
    from seq2labels.models import attention

    saved = attention.ENERGY_CHUNK_ELEMENTS
    attention.ENERGY_CHUNK_ELEMENTS = ONE_PIECE
    try:
        yield
    finally:
        attention.ENERGY_CHUNK_ELEMENTS = saved


@contextlib.contextmanager
def encoder_as_before_6903dbe():
    """Benchmark-only: the encoder as it was before commit 6903dbe. The backward direction's
    reversal is a ``gather`` with an index expanded over the features (now one ``index_select`` of
    whole rows), and pooling multiplies the memory by the mask again (now skipped when the encoder
    promises zero padding). Same outputs; restored on exit."""
    import torch

    from seq2labels.models.encoders import rnn

    def reverse_by_gather(x, rows):
        batch, time, _ = x.shape
        index = rows.view(batch, time) - torch.arange(batch, device=x.device)[:, None] * time  # (batch, time)
        return x.gather(1, index.unsqueeze(-1).expand_as(x))             # (batch, time, dim)

    saved_reverse, saved_zero = rnn.reverse_rows, rnn.Encoder.memory_zero_on_padding
    rnn.reverse_rows = reverse_by_gather
    rnn.Encoder.memory_zero_on_padding = property(lambda self: False)
    try:
        yield
    finally:
        rnn.reverse_rows, rnn.Encoder.memory_zero_on_padding = saved_reverse, saved_zero


def _grad_mode(name: str):
    import torch

    return {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad,
            "autograd": torch.enable_grad}[name]()


def decode_all(generator, encoded, *, beam_size: int, batch_size: int, bucket: bool, grad_mode: str,
               early_stop: bool, decode_kw: dict, precision: str = "fp32", share_static: bool = True,
               energy_in_slices: bool = True, encoder_ops: str = "current") -> tuple[list[list[str]], CountingStepModel]:
    """decode_encoded's loop with every switch exposed; labels of every text in input order.

    Every switch is set and undone inside this call, so interleaved runs of different switches
    never see each other's settings."""
    from seq2labels.data.dataset import batch_indices, collate
    from seq2labels.decoding import decode
    from seq2labels.training.precision import autocast

    dec = generator.config.decode
    model = CountingStepModel(generator.model, share_static=share_static)
    labels: list[list[str] | None] = [None] * len(encoded)
    with contextlib.ExitStack() as switches:
        if not early_stop:
            switches.enter_context(without_early_stop())
        if not energy_in_slices:
            switches.enter_context(energy_in_one_piece())
        if encoder_ops == "before 6903dbe":
            switches.enter_context(encoder_as_before_6903dbe())
        switches.enter_context(_grad_mode(grad_mode))
        switches.enter_context(autocast(generator.device, precision))
        for idx in batch_indices(encoded.lengths(), batch_size, shuffle=False, bucket=bucket):
            batch = collate(encoded, idx)
            out = decode(model, batch.src, batch.src_lengths, beam_size=beam_size, max_labels=dec.max_labels,
                         min_labels=dec.min_labels, **decode_kw)
            seqs, counts = out.sequences.tolist(), out.lengths.tolist()
            for r, i in enumerate(idx):
                ids = list(dict.fromkeys(seqs[r][: counts[r]]))        # first occurrences, as predict()
                labels[i] = generator.label_vocab.decode(ids)
    return labels, model  # type: ignore[return-value]


def decode_switches(has_compact: bool) -> list[tuple[str, str, dict]]:
    """(switch, setting, options) rows; the first row of each switch is the package default."""
    base = {"bucket": True, "grad_mode": "inference_mode", "early_stop": True, "decode_kw": {}, "precision": "fp32",
            "share_static": True, "energy_in_slices": True, "encoder_ops": "current"}
    if has_compact:
        base["decode_kw"] = {"compact": True}
    rows = [("default", "as LabelGenerator.predict", base)]
    for mode in ("no_grad", "autograd"):
        rows.append(("grad mode", mode, {**base, "grad_mode": mode}))
    rows.append(("batch order", "input order (not length-sorted)", {**base, "bucket": False}))
    no_compact = {**base, "decode_kw": {"compact": False}} if has_compact else base
    if has_compact:
        rows.append(("compaction", "compact=False", no_compact))
    rows.append(("early stop", "off (all max_labels steps)" + (", compact=False" if has_compact else ""),
                 {**no_compact, "early_stop": False}))
    rows.append(("precision", "bf16 autocast", {**base, "precision": "bf16"}))
    rows.append(("encoder outputs", "copied per hypothesis (static_per_example off)", {**base, "share_static": False}))
    rows.append(("attention energy", "one piece (no slicing)", {**base, "energy_in_slices": False}))
    rows.append(("encoder reversal", "gather, pooling re-masks (before 6903dbe)",
                 {**base, "encoder_ops": "before 6903dbe"}))
    return rows


def measure_decode_switches(spec: dict) -> dict:
    """Beam 5, batch 256, decoding only (texts encoded once): each switch against the default.
    The malloc thresholds are raised first, as LabelGenerator.decode_encoded does."""
    import inspect

    from seq2labels.training.allocator import keep_freed_memory
    from seq2labels.decoding import decode
    from seq2labels.pipeline.generator import load_model

    set_threads(spec["threads"])
    raised = keep_freed_memory()
    generator = load_model(spec["model"])
    generator.model.eval()
    test = load_test(spec["dataset"], spec.get("test_docs"))
    gold = [list(ex.labels) for ex in test]
    names = list(generator.label_vocab.labels)
    encoded = generator.encode_texts([ex.text for ex in test])
    has_compact = "compact" in inspect.signature(decode).parameters
    warm = generator.encode_texts([ex.text for ex in test[: spec["batch_size"]]])
    for precision in PRECISIONS:                                         # warm-up (one batch), not timed
        decode_all(generator, warm, beam_size=5, batch_size=spec["batch_size"], bucket=True,
                   grad_mode="inference_mode", early_stop=True, decode_kw={}, precision=precision)

    def task(options: dict):
        return lambda: decode_all(generator, encoded, beam_size=5, batch_size=spec["batch_size"], **options)

    switches = decode_switches(has_compact)
    runs = timed_interleaved({(switch, setting): task(options) for switch, setting, options in switches},
                             spec["repeats"])
    rows, reference = [], None
    for switch, setting, options in switches:
        labels, counter = runs[switch, setting].result
        reference = labels if reference is None else reference
        rows.append({"switch": switch, "setting": setting, "options": options, "threads": spec["threads"],
                     "docs": len(encoded), **runs[switch, setting].record(len(encoded), "docs_"),
                     "micro_f1": round(micro_f1(gold, labels, names), 6),
                     "same_as_default": same_labels(labels, reference),
                     "decoder_steps": counter.steps, "hypothesis_rows_stepped": counter.rows})
    return {"rows": rows, "has_compact": has_compact, "max_labels": generator.config.decode.max_labels,
            "batches": math.ceil(len(encoded) / spec["batch_size"]), "malloc_thresholds_raised": raised}
