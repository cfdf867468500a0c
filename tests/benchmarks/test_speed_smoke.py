"""The speed suite's own machinery (benchmarks/speed.py over benchmarks/speed_suite/): its peer encoders and switches must be
what they claim, or the table compares the wrong things; a --quick run must produce every table
(fp32 and bf16 rows, the decoding switches, both malloc settings) and older result files must still
render; its phases run in their own processes through speed.py. No timing is asserted here."""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch

from seq2labels.decoding import decode
from seq2labels.decoding import search
from seq2labels.models.sgm import SGM
from seq2labels.models.config import SGMConfig

def _tiny_sgm(seed: int = 0) -> SGM:
    torch.manual_seed(seed)
    return SGM(SGMConfig(vocab_size=40, num_outputs=12, embedding_dim=8, encoder_hidden=6, label_embedding_dim=8,
                         decoder_hidden=10, dropout=0.0)).eval()


def _batch():
    lengths = torch.tensor([7, 2, 5, 1])
    src = torch.randint(1, 40, (4, 7))
    for i, n in enumerate(lengths.tolist()):
        src[i, n:] = 0
    return src, lengths


def _copy_package_weights(model: SGM, peer) -> None:
    """The package encoder's two unidirectional RNNs are the peer's forward and reverse weights."""
    state = {}
    for direction, suffix in ((0, ""), (1, "_reverse")):
        uni = model.encoder.layers[0][direction]
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"{name}_l0{suffix}"] = getattr(uni, f"{name}_l0")
    peer.rnn.load_state_dict(state)
    peer.embedding.load_state_dict(model.encoder.embedding.state_dict())


def test_packed_peer_computes_the_package_encoder_and_padded_peer_differs_only_backwards(speed_suite):
    model = _tiny_sgm()
    classes = speed_suite.training._encoder_classes()
    packed, padded = classes["packed"](model.config).eval(), classes["padded"](model.config).eval()
    _copy_package_weights(model, packed)
    _copy_package_weights(model, padded)
    src, lengths = _batch()
    with torch.no_grad():
        ours, mask, pooled = model.encoder(src, lengths)             # (batch, time, 12)
        by_packing, packed_mask, packed_pooled = packed(src, lengths)
        by_padding, _, _ = padded(src, lengths)
    assert torch.equal(mask, packed_mask)
    assert torch.allclose(ours, by_packing, atol=1e-6)
    assert torch.allclose(pooled, packed_pooled, atol=1e-6)
    hidden = model.config.encoder_hidden
    assert torch.allclose(ours[..., :hidden], by_padding[..., :hidden], atol=1e-6)   # forward: same
    full = lengths == src.size(1)                                   # no padding: backward is the same too
    assert torch.allclose(ours[full], by_padding[full], atol=1e-6)
    assert not torch.allclose(ours[~full][..., hidden:], by_padding[~full][..., hidden:], atol=1e-4)


def test_build_variant_swaps_only_the_encoder(speed_suite, tmp_path):
    from seq2labels.pipeline.config import load_config
    from seq2labels.data.labels import LabelVocab
    from seq2labels.data.vocab import Vocab

    cfg = load_config(None, ["model.embedding_dim=8", "model.encoder_hidden=6", "model.decoder_hidden=10",
                             "model.label_embedding_dim=8"])
    vocab = Vocab.build([["a", "b", "c"]], min_count=1)
    labels = LabelVocab.build([["x", "y"]])
    training = speed_suite.training
    ours = training.build_variant(cfg, vocab, labels, "ours")
    for kind in ("padded", "packed"):
        peer = training.build_variant(cfg, vocab, labels, kind)
        assert type(peer.encoder).__name__ != type(ours.encoder).__name__
        assert sum(p.numel() for p in peer.encoder.parameters()) == sum(p.numel() for p in ours.encoder.parameters())
        assert torch.equal(peer.output.weight, ours.output.weight)  # same seed, same decoder


@pytest.mark.parametrize("beam_size", [1, 3])
def test_without_early_stop_runs_every_step_and_changes_no_answer(speed_suite, beam_size):
    switches = speed_suite.switches
    model = _tiny_sgm(1)
    src, lengths = _batch()
    counted = switches.CountingStepModel(model)
    with torch.inference_mode():
        early = decode(counted, src, lengths, beam_size=beam_size, max_labels=6)
        early_steps = counted.steps
        counted.steps = 0
        with switches.without_early_stop():
            full = decode(counted, src, lengths, beam_size=beam_size, max_labels=6)
    assert counted.steps == 6 >= early_steps
    assert torch.equal(early.sequences, full.sequences) and torch.equal(early.lengths, full.lengths)
    assert torch.allclose(early.scores, full.scores)
    assert "bool" not in vars(search)                                # the switch is undone


def test_switch_table_starts_with_the_default_and_changes_one_thing_per_row(speed_suite):
    for has_compact in (False, True):
        rows = speed_suite.switches.decode_switches(has_compact)
        default = rows[0][2]
        assert rows[0][0] == "default" and default["early_stop"] and default["grad_mode"] == "inference_mode"
        for switch, _, options in rows[1:]:
            changed = {k for k in options if options[k] != default[k]}
            assert len(changed) == 1 or (switch == "early stop" and changed == {"early_stop", "decode_kw"})
        assert any(o["decode_kw"] == {"compact": False} for _, _, o in rows) == has_compact
        settings = {(switch, setting) for switch, setting, _ in rows}
        assert {("precision", "bf16 autocast"), ("encoder outputs", "copied per hypothesis (static_per_example off)"),
                ("attention energy", "one piece (no slicing)"),
                ("encoder reversal", "gather, pooling re-masks (before 6903dbe)")} <= settings


def test_counting_model_can_hide_shared_static_and_changes_no_answer(speed_suite):
    class StaticRows(speed_suite.switches.CountingStepModel):
        """Also notes the most rows any static tensor had at a step."""

        most = 0

        def step(self, prev_labels, state, static, forbidden):
            self.most = max(self.most, static["mask"].shape[0])
            return super().step(prev_labels, state, static, forbidden)

    model = _tiny_sgm(1)                                             # decodes 5 labels per text
    src, lengths = _batch()
    shared, copied = StaticRows(model), StaticRows(model, share_static=False)
    assert shared.static_per_example and not copied.static_per_example
    with torch.inference_mode():
        a = decode(shared, src, lengths, beam_size=3, max_labels=5, compact=False)
        b = decode(copied, src, lengths, beam_size=3, max_labels=5, compact=False)
    assert shared.most == 4 and copied.most == 4 * 3                 # one row per example / per hypothesis
    assert torch.equal(a.sequences, b.sequences) and torch.allclose(a.scores, b.scores, atol=1e-5)


def test_energy_in_one_piece_is_undone_and_changes_no_answer(speed_suite, monkeypatch):
    from seq2labels.models import attention

    switches = speed_suite.switches
    monkeypatch.setattr(attention, "ENERGY_CHUNK_ELEMENTS", 1)             # the tiny model: one example per slice
    model = _tiny_sgm(3)
    src, lengths = _batch()
    with torch.inference_mode():
        sliced = decode(model, src, lengths, beam_size=3, max_labels=5)
        with switches.energy_in_one_piece():
            assert attention.ENERGY_CHUNK_ELEMENTS == switches.ONE_PIECE
            whole = decode(model, src, lengths, beam_size=3, max_labels=5)
    assert attention.ENERGY_CHUNK_ELEMENTS == 1
    assert torch.equal(sliced.sequences, whole.sequences) and torch.allclose(sliced.scores, whole.scores, atol=1e-5)


def test_training_variants_are_the_six_fp32_ones_and_two_bf16(speed_suite):
    training = speed_suite.training
    fp32 = [v for v in training.TRAIN_VARIANTS if v[2] == "fp32"]
    assert sorted(fp32) == sorted((e, o, "fp32") for e in training.ENCODERS for o in training.ORDERS)
    assert [v for v in training.TRAIN_VARIANTS if v[2] == "bf16"] == [("ours", "bucketed", "bf16"),
                                                                       ("padded", "random", "bf16")]
    assert training.PLAIN_PADDED in training.TRAIN_VARIANTS
    assert training._variant(["ours", "bucketed"]) == ("ours", "bucketed", "fp32")   # older specs
    assert training.package_variants() == [["ours", "bucketed", p] for p in speed_suite.harness.PRECISIONS]


def test_agreement_compares_bf16_with_fp32_and_batch_1_with_batch_256(speed_suite):
    def row(decoding, batch_size, precision, labels, f1):
        return {"decoding": decoding, "batch_size": batch_size, "precision": precision, "labels": labels,
                "micro_f1": f1, "docs": len(labels)}

    rows = [row("beam5", 256, "fp32", [["a"], ["b"]], 0.5), row("beam5", 256, "bf16", [["a"], ["c"]], 0.25),
            row("beam5", 1, "fp32", [["a"], ["b"]], 0.5), row("beam5", 1, "bf16", [["a"], ["b"]], 0.5)]
    speed_suite.prediction.add_agreement(rows)
    assert rows[1]["same_as_fp32"] == "1/2" and rows[1]["micro_f1_minus_fp32"] == -0.25
    assert rows[3]["same_as_fp32"] == "2/2" and rows[3]["same_as_batch_256"] == "1/2"
    assert "same_as_fp32" not in rows[0] and rows[2]["same_as_batch_256"] == "2/2"


def test_time_to_best_precision_option(speed):
    assert speed.parse_args([]).time_to_best_precision == ["fp32"]
    args = speed.parse_args(["--time-to-best", "--time-to-best-precision", "fp32", "bf16"])
    assert args.time_to_best_precision == ["fp32", "bf16"]
    with pytest.raises(SystemExit):
        speed.parse_args(["--time-to-best-precision", "fp16"])


def _as_old_format(record: dict) -> dict:
    """A result as written before precisions and malloc settings were measured: fp32 rows without a
    precision key, one measured time-to-best dict, one training-memory phase, no allocator section."""
    def strip(value):
        if isinstance(value, list):
            return [strip(v) for v in value if not (isinstance(v, dict) and v.get("precision", "fp32") != "fp32")]
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "precision"}
        return value

    old = strip(copy.deepcopy(record))
    old.pop("allocator", None)
    measured = old["time_to_best"].get("measured")
    if isinstance(measured, list):
        old["time_to_best"]["measured"] = measured[0] if measured else None
    memory = old.get("training_memory", {})
    if "fp32" in memory:
        old["training_memory"] = memory["fp32"]
    return old


def test_result_files_render_in_both_formats(speed_suite, tmp_path):
    from common import RESULTS

    files = sorted(RESULTS.glob("speed_*.json"))
    if not files:
        pytest.skip("no speed results recorded")
    for path in files:
        record = json.loads(path.read_text())
        (tmp_path / path.name).write_text(json.dumps(record))
        (tmp_path / path.name.replace("speed_", "speed_old-")).write_text(json.dumps(_as_old_format(record)))
    text = speed_suite.report.summary_markdown(tmp_path)
    assert "## Targets (Reuters-21578, issue 6)" in text or "reuters21578" not in text
    assert text.count("### Training throughput") == 2 * len(files)


def _can_run_quick(harness) -> bool:
    return harness.model_dir("reuters21578").exists() and "test" in harness.data_files("reuters21578")


def test_quick_run_has_bf16_rows_switch_rows_and_both_malloc_settings(speed, speed_suite, tmp_path):
    harness = speed_suite.harness
    if not _can_run_quick(harness):
        pytest.skip("needs benchmarks/runs/reuters21578-sgm/model and the shared Reuters-21578 data")
    speed.main(["--quick", "--dataset", "reuters21578", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "speed_reuters21578.json").read_text())

    training = record["training"]
    assert "error" not in training
    assert {(r["encoder"], r["order"], r["precision"]) for r in training["rows"]} == set(speed_suite.training.TRAIN_VARIANTS)
    assert set(record["training_memory"]) == {"fp32", "bf16"}

    prediction = record["prediction"]
    assert "error" not in prediction
    keys = {(r["decoding"], r["batch_size"], r["precision"]) for r in prediction["rows"]}
    assert keys == {(d, b, p) for d in speed_suite.prediction.DECODINGS for b in (256, 1)
                    for p in harness.PRECISIONS}
    for r in prediction["rows"]:
        assert ("same_as_fp32" in r and "micro_f1_minus_fp32" in r) == (r["precision"] == "bf16")

    switches = record["decode_switches"]
    assert "error" not in switches
    settings = {(r["switch"], r["setting"]) for r in switches["rows"]}
    assert {(s, v) for s, v, _ in speed_suite.switches.decode_switches(switches["has_compact"])} == settings

    allocator = record["allocator"]["settings"]
    assert [s["name"] for s in allocator] == list(speed_suite.allocator.ALLOCATOR_SETTINGS)
    for setting in allocator:
        assert "error" not in setting["training"] and "error" not in setting["prediction"]
        assert {r["precision"] for r in setting["prediction"]["rows"]} == set(harness.PRECISIONS)
        if sys.platform.startswith("linux"):                         # the environment reached the process
            raised = setting["env"] == {}
            assert setting["training"]["malloc_thresholds_raised"] == raised
            assert setting["prediction"]["malloc_thresholds_raised"] == raised

    text = (tmp_path / "speed.md").read_text()
    for needle in ("| encoder | batch order | precision |", "same labels as fp32", "static_per_example off",
                   "one piece (no slicing)", "SEQ2LABELS_MALLOC=default", "package default"):
        assert needle in text
    targets = "\n".join(speed_suite.targets.targets_markdown([{**record, "quick": False}]))
    assert "batch 256, 1 thread(s), bf16" in targets and "fp32 against padded, random, fp32" in targets
    assert "bf16 against padded, random, fp32" in targets


def test_encoder_as_before_6903dbe_is_undone_and_changes_no_answer(speed_suite):
    from seq2labels.models.encoders import rnn

    model = _tiny_sgm(4)
    src, lengths = _batch()
    reverse, zero = rnn.reverse_rows, rnn.Encoder.memory_zero_on_padding
    with torch.inference_mode():
        now = decode(model, src, lengths, beam_size=3, max_labels=5)
        memory_now = model.encoder(src, lengths).memory
        with speed_suite.switches.encoder_as_before_6903dbe():
            assert rnn.reverse_rows is not reverse and not model.encoder.memory_zero_on_padding
            before = decode(model, src, lengths, beam_size=3, max_labels=5)
            memory_before = model.encoder(src, lengths).memory
    assert rnn.reverse_rows is reverse and rnn.Encoder.memory_zero_on_padding is zero
    assert model.encoder.memory_zero_on_padding
    assert torch.equal(memory_now, memory_before)
    assert torch.equal(now.sequences, before.sequences) and torch.equal(now.scores, before.scores)
