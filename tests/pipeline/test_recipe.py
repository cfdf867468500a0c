"""The trained tagger end to end: decoding, predictions, evaluation, determinism."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from seq2labels.pipeline.config import load_config, replace
from seq2labels.data.dataset import collate
from seq2labels.data.readers import Example
from seq2labels.decoding import beam_decode, decode, greedy_decode
from seq2labels.errors import DataFormatError
from seq2labels.pipeline.generator import LabelGenerator, Prediction
from seq2labels.errors import ConfigError
from seq2labels.pipeline.recipe import load_training_data, split_validation, train, validation_seed

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def batch(tiny, test_texts):
    g = tiny.generator
    encoded = g.encode_texts(test_texts)
    return collate(encoded, list(range(len(encoded))))


# ---- decoding ------------------------------------------------------------------------------

@pytest.mark.parametrize("min_labels", [0, 2])
def test_beam_size_1_equals_greedy_decoding_exactly(tiny, batch, min_labels):
    model = tiny.generator.model.eval()
    with torch.inference_mode():
        greedy = greedy_decode(model, batch.src, batch.src_lengths, max_labels=5, min_labels=min_labels)
        beam = beam_decode(model, batch.src, batch.src_lengths, beam_size=1, max_labels=5, min_labels=min_labels)
        via_decode = decode(model, batch.src, batch.src_lengths, beam_size=1, max_labels=5, min_labels=min_labels)
    for out in (beam, via_decode):
        for name in ("sequences", "lengths", "step_probs", "scores", "label_scores"):
            assert torch.equal(getattr(out, name), getattr(greedy, name)), name
    if min_labels:
        assert (greedy.lengths >= min_labels).all()


def test_generator_predict_with_beam_1_matches_decoding_the_batch(tiny, batch, test_texts):
    preds = tiny.generator.predict(test_texts, beam_size=1, min_labels=1)
    with torch.inference_mode():
        out = greedy_decode(tiny.generator.model, batch.src, batch.src_lengths,
                            max_labels=tiny.cfg.decode.max_labels, min_labels=1)
    for i, p in enumerate(preds):
        n = int(out.lengths[i])
        assert p.labels == tiny.generator.label_vocab.decode(out.sequences[i, :n].tolist())
        assert p.probabilities == pytest.approx(out.step_probs[i, :n].tolist(), abs=1e-6)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_no_prediction_repeats_a_label(tiny, test_texts, beam_size):
    preds = tiny.generator.predict(test_texts, beam_size=beam_size, min_labels=4, max_labels=6)
    for p in preds:
        assert 4 <= len(p.labels) <= 6
        assert len(set(p.labels)) == len(p.labels), p.labels
        assert len(p.probabilities) == len(p.labels)
        assert all(0.0 < q <= 1.0 for q in p.probabilities)


def test_forced_to_emit_every_label_each_comes_exactly_once(tiny, test_texts):
    labels = tiny.generator.label_vocab.labels
    n = len(labels)
    for p in tiny.generator.predict(test_texts[:4], min_labels=n, max_labels=n):
        assert sorted(p.labels) == sorted(labels)


def test_score_is_the_log_probability_of_the_labels_and_the_stop(tiny, test_texts):
    """The score sums the label steps' log-probabilities and, when the model stopped, EOS."""
    for p in tiny.generator.predict(test_texts, max_labels=3):
        label_part = float(np.sum(np.log(p.probabilities))) if p.probabilities else 0.0
        assert p.score <= label_part + 1e-5
        if len(p.labels) == 3:
            assert p.score == pytest.approx(label_part, abs=1e-4)   # hit max_labels: no EOS step
        else:
            assert p.score < label_part                            # EOS had probability < 1


# ---- inputs --------------------------------------------------------------------------------

def test_an_empty_text_is_predicted_like_any_other(tiny, test_texts):
    g = tiny.generator
    alone = g.predict([""], min_labels=1)[0]
    among = g.predict([test_texts[0], "", test_texts[1]], min_labels=1)[1]
    assert isinstance(alone, Prediction)
    assert len(alone.labels) >= 1 and alone.labels[0] in g.label_vocab.labels
    assert alone.labels == among.labels
    assert alone.probabilities == pytest.approx(among.probabilities, abs=1e-6)
    # text that tokenizes to nothing behaves exactly like ""
    assert g.predict(["   \n\t "], min_labels=1)[0].labels == alone.labels
    default = g.predict([""])[0]
    assert isinstance(default.labels, list) and np.isfinite(default.score)
    with_attention = g.predict([""], min_labels=1, return_attention=True)[0]
    assert with_attention.tokens == ["<empty>"] and with_attention.attention.shape == (len(with_attention.labels), 1)


def test_predictions_do_not_depend_on_batch_size(tiny, test_texts):
    g = tiny.generator
    one = g.predict(test_texts, batch_size=1, min_labels=1, beam_size=2)
    many = g.predict(test_texts, batch_size=64, min_labels=1, beam_size=2)
    for a, b in zip(one, many, strict=True):
        assert a.labels == b.labels
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5, rtol=0)
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_predictions_do_not_depend_on_input_order(tiny, test_texts):
    g = tiny.generator
    forward = g.predict(test_texts, min_labels=1, batch_size=16)
    order = np.random.default_rng(0).permutation(len(test_texts))
    shuffled = g.predict([test_texts[i] for i in order], min_labels=1, batch_size=16)
    for j, i in enumerate(order):
        assert shuffled[j].labels == forward[i].labels
        np.testing.assert_allclose(shuffled[j].probabilities, forward[i].probabilities, atol=1e-5, rtol=0)


def test_texts_must_be_a_list_of_strings(tiny):
    with pytest.raises(TypeError, match="single string"):
        tiny.generator.predict("one text")
    with pytest.raises(TypeError, match="text #1 is int"):
        tiny.generator.predict(["fine", 3])


def test_bad_decoding_limits_are_errors(tiny):
    with pytest.raises(ValueError, match="beam_size"):
        tiny.generator.predict(["x"], beam_size=0)


def test_attention_and_label_scores(tiny, test_texts):
    g = tiny.generator
    preds = g.predict(test_texts[:5], min_labels=2, return_attention=True)
    for text, p in zip(test_texts[:5], preds):
        tokens = g.tokenizer(text)[: g.config.text.max_len] or ["<empty>"]
        assert p.tokens == tokens
        assert p.attention.shape == (len(p.labels), len(tokens))
        np.testing.assert_allclose(p.attention.sum(1), 1.0, atol=1e-5)
    scores = g.label_scores(test_texts[:5])
    assert scores.shape == (5, g.label_vocab.num_labels)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert g.label_scores([]).shape == (0, g.label_vocab.num_labels)


def test_prediction_to_json_rounds_floats():
    p = Prediction(labels=["a", "b"], probabilities=[0.123456789, 0.5], score=-1.0000004)
    assert p.to_json() == {"labels": ["a", "b"], "probabilities": [0.123457, 0.5], "score": -1.0}


# ---- evaluation ----------------------------------------------------------------------------

def test_a_label_seen_only_at_evaluation_counts_as_a_miss_and_warns_once(tiny, test_texts):
    base = tiny.generator
    cfg = replace(base.config, decode=replace(base.config.decode, min_labels=1))  # never an empty prediction
    g = LabelGenerator(base.model, base.tokenizer, base.vocab, base.label_vocab, cfg)
    texts = test_texts[:30]
    predicted = [p.labels for p in g.predict(texts)]
    perfect = [Example(t, tuple(labels)) for t, labels in zip(texts, predicted)]
    assert g.evaluate(perfect)["micro_f1"] == 1.0
    n_gold = sum(len(labels) for labels in predicted)
    assert n_gold > 0
    with_unseen = list(perfect)
    with_unseen[3] = Example(texts[3], (*predicted[3], "brand_new_label"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = g.evaluate(with_unseen)
    assert metrics["micro_precision"] == 1.0
    assert metrics["micro_recall"] == pytest.approx(n_gold / (n_gold + 1))
    naming = [w for w in caught if "brand_new_label" in str(w.message)]
    assert len(naming) == 1, [str(w.message) for w in caught]
    assert len(caught) == 1


def test_evaluate_passes_decoding_options(tiny, test_texts, monkeypatch):
    seen = {}
    real = LabelGenerator.decode_encoded

    def spy(self, encoded, **kwargs):
        seen.update(kwargs)
        return real(self, encoded, **kwargs)

    monkeypatch.setattr(LabelGenerator, "decode_encoded", spy)
    tiny.generator.evaluate([Example(test_texts[0], ("joy",))], beam_size=2, max_labels=1)
    assert seen["beam_size"] == 2 and seen["max_labels"] == 1


def test_evaluate_returns_the_metrics(tiny):
    metrics = tiny.generator.evaluate(tiny.test_examples[:40])
    assert metrics["n_docs"] == 40
    for key in ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss"):
        assert 0.0 <= metrics[key] <= 1.0, key


# ---- training ------------------------------------------------------------------------------

def test_training_history_and_best_epoch(tiny):
    r = tiny.result
    assert r.epochs_run == 2 and len(r.history) == 2
    assert 1 <= r.best_epoch <= 2
    assert r.best_score == max(row["micro_f1"] for row in r.history)
    assert not tiny.generator.model.training


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tiny, train_tiny):
    again, _ = train_tiny(tiny.cfg)
    state = again.model.state_dict()
    assert state.keys() == tiny.state.keys()
    for key, value in tiny.state.items():
        assert torch.equal(state[key], value), key
    other, _ = train_tiny(replace(tiny.cfg, train=replace(tiny.cfg.train, seed=1)))
    other_state = other.model.state_dict()
    differing = [k for k in tiny.state if not torch.equal(other_state[k], tiny.state[k])]
    assert "encoder.embedding.weight" in differing and "output.weight" in differing


def test_split_validation_is_seeded_and_disjoint(sample_examples):
    examples = sample_examples[0][:50]
    train_a, valid_a = split_validation(examples, 0.2, seed=3)
    train_b, valid_b = split_validation(examples, 0.2, seed=3)
    assert (train_a, valid_a) == (train_b, valid_b)
    assert len(valid_a) == 10 and len(train_a) == 40
    assert split_validation(examples, 0.2, seed=4)[1] != valid_a
    with pytest.raises(DataFormatError, match="at least 2"):
        split_validation(examples[:1], 0.2, seed=0)


def test_split_seed_holds_one_split_out_of_every_ensemble_member(sample_examples, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": ex.text, "labels": list(ex.labels)}) + "\n"
                            for ex in sample_examples[0][:60]), encoding="utf-8")

    def valid_texts(*overrides):
        cfg = load_config(None, [f"data.train={path}", "data.valid_fraction=0.2", *overrides])
        return [ex.text for ex in load_training_data(cfg)[1]]
    by_seed = {seed: valid_texts(f"train.seed={seed}") for seed in (0, 1)}
    assert by_seed[0] != by_seed[1]                                   # by default each seed carves its own split
    shared = [valid_texts(f"train.seed={seed}", "data.split_seed=7") for seed in (0, 1, 2)]
    assert shared[0] == shared[1] == shared[2] == valid_texts("train.seed=7")
    assert validation_seed(load_config(None, ["train.seed=3"])) == 3
    with pytest.raises(ConfigError, match="data.split_seed"):
        load_config(None, ["data.split_seed=-1"])


def test_training_data_without_any_label_is_a_data_error():
    examples = [Example(f"text {i}", ()) for i in range(10)]
    cfg = load_config(None, ["train.epochs=1", "train.progress=false"])
    with pytest.raises(DataFormatError, match="no labels found"):
        train(cfg, None, train_examples=examples)


def test_unseen_validation_labels_warn_once_for_the_whole_run(tiny, sample_examples):
    examples = list(sample_examples[0][:80])
    train_part, valid_part = split_validation(examples, 0.2, seed=0)
    valid_part[0] = Example(valid_part[0].text, ("only_in_valid",))
    cfg = load_config(None, ["text.min_count=1", "model.embedding_dim=8", "model.encoder_hidden=8",
                             "model.decoder_hidden=8", "model.label_embedding_dim=8", "train.epochs=3",
                             "train.patience=5", "train.progress=false"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, None, train_examples=train_part, valid_examples=valid_part)
    naming = [str(w.message) for w in caught if "only_in_valid" in str(w.message)]
    assert len(naming) == 1, naming


def test_encode_texts_truncates_to_max_len(tiny):
    encoded = tiny.generator.encode_texts(["word " * 100, ""])
    assert len(encoded.token_ids[0]) == tiny.cfg.text.max_len and encoded.token_ids[1] == []
