"""Per-label thresholds on a trained model: tuned, saved, loaded, applied, switched off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seq2labels.errors import ModelFormatError
from seq2labels.evaluation.thresholds import binary_f1
from seq2labels.pipeline.generator import load_model
from seq2labels.pipeline.loading import load_for_inference
from seq2labels.pipeline.thresholds import THRESHOLDS_FILE, tune_generator

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "model_v1"


@pytest.fixture(scope="module")
def tuned(tiny, single_thread):
    """The tiny model's thresholds tuned on the sample's 120 held-out examples (beam 2)."""
    with single_thread():
        return tune_generator(tiny.generator, tiny.test_examples, beam_size=2)


@pytest.fixture
def with_thresholds(tiny, tuned):
    generator = tiny.generator
    generator.thresholds, generator.use_thresholds = tuned, True
    try:
        yield generator
    finally:
        generator.thresholds, generator.use_thresholds = None, True


def _indicators(generator, label_lists):
    index = {label: j for j, label in enumerate(generator.label_vocab.labels)}
    out = np.zeros((len(label_lists), len(index)), dtype=bool)
    for i, labels in enumerate(label_lists):
        out[i, [index[lab] for lab in labels if lab in index]] = True
    return out


def test_tuning_finds_labels_to_threshold(tuned, tiny):
    assert tuned.labels == list(tiny.generator.label_vocab.labels)
    assert tuned.beam_size == 2 and tuned.validation_docs == len(tiny.test_examples)
    assert 0 < tuned.tuned_count < len(tuned.labels)


def test_thresholds_never_lower_a_labels_f1_on_the_tuning_data(tiny, tuned, with_thresholds):
    """Without a label cap (tuning treats labels independently), every tuned label gains F1 on the
    tuning data and every other label keeps its decoded decisions."""
    examples = tiny.test_examples
    gold = _indicators(tiny.generator, [ex.labels for ex in examples])
    texts = [ex.text for ex in examples]
    every = len(tuned.labels)
    thresholded = _indicators(tiny.generator, [p.labels for p in with_thresholds.predict(texts, beam_size=2,
                                                                                          max_labels=every)])
    capped = with_thresholds.predict(texts, beam_size=2, max_labels=3)
    assert max(len(p.labels) for p in capped) <= 3
    with_thresholds.use_thresholds = False
    decoded = _indicators(tiny.generator, [p.labels for p in with_thresholds.predict(texts, beam_size=2,
                                                                                      max_labels=every)])
    improved = 0
    for j in range(gold.shape[1]):
        after, before = binary_f1(gold[:, j], thresholded[:, j]), binary_f1(gold[:, j], decoded[:, j])
        assert after >= before - 1e-12
        if np.isnan(tuned.values[j]):
            assert (thresholded[:, j] == decoded[:, j]).all()
        improved += after > before
    assert improved == tuned.tuned_count


def test_the_rule_is_score_at_least_threshold(tiny, tuned, with_thresholds, test_texts):
    every = len(tuned.labels)
    rows = tiny.generator.decode_encoded(tiny.generator.encode_texts(test_texts), beam_size=2, max_labels=every)
    preds = with_thresholds.predict(test_texts, beam_size=2, max_labels=every)
    for row, pred in zip(rows, preds):
        decoded = set(tiny.generator.label_vocab.decode(row["ids"]))
        expected = {label for j, label in enumerate(tuned.labels)
                    if (label in decoded if np.isnan(tuned.values[j]) else row["label_scores"][j] >= tuned.values[j])}
        assert set(pred.labels) == expected
        kept = [lab for lab in tiny.generator.label_vocab.decode(row["ids"]) if lab in expected]
        assert pred.labels[:len(kept)] == kept                            # decoded order first, then added


def test_saved_loaded_and_switched_off(tiny, tuned, with_thresholds, tmp_path, test_texts):
    folder = with_thresholds.save(tmp_path / "model")
    data = json.loads((folder / THRESHOLDS_FILE).read_text())
    assert data["tuned_labels"] == tuned.tuned_count and set(data["thresholds"]) == set(tuned.labels)
    loaded = load_model(folder)
    np.testing.assert_allclose(loaded.thresholds.values, tuned.values, atol=1e-8)
    on = [p.labels for p in loaded.predict(test_texts, beam_size=2)]
    assert on == [p.labels for p in with_thresholds.predict(test_texts, beam_size=2)]
    off = load_for_inference(folder, thresholds=False)
    assert off.thresholds is not None and not off.use_thresholds
    with_thresholds.use_thresholds = False
    plain = [p.labels for p in with_thresholds.predict(test_texts, beam_size=2)]
    assert [p.labels for p in off.predict(test_texts, beam_size=2)] == plain
    assert on != plain


def test_bad_thresholds_file_names_file_and_field(tiny, tuned, with_thresholds, tmp_path):
    folder = with_thresholds.save(tmp_path / "model")
    path = folder / THRESHOLDS_FILE
    data = json.loads(path.read_text())
    data["thresholds"][tuned.labels[0]] = "high"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match=rf"thresholds.json.*thresholds\.{tuned.labels[0]}"):
        load_model(folder)
    del data["thresholds"][tuned.labels[0]]
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="does not match the model's labels"):
        load_model(folder)


def test_old_model_folder_has_no_thresholds_nor_label_counts():
    generator = load_model(FIXTURE)
    assert generator.thresholds is None and generator.active_thresholds() is None


def test_training_option_tunes_on_the_validation_split(tiny_cfg, train_tiny, single_thread, tmp_path):
    from dataclasses import replace

    cfg = replace(tiny_cfg, decode=replace(tiny_cfg.decode, tune_thresholds=True),
                  train=replace(tiny_cfg.train, epochs=1))
    with single_thread():
        generator, _ = train_tiny(cfg)
    assert generator.thresholds is not None
    assert generator.thresholds.validation_docs == generator.data_summary["valid_docs"]
    folder = generator.save(tmp_path / "m")
    assert load_model(folder).thresholds.tuned_count == generator.thresholds.tuned_count


def test_rare_macro_f1_comes_with_the_training_counts(tiny):
    metrics = tiny.generator.evaluate(tiny.test_examples)
    assert metrics["rare_label_count"] > 0 and 0.0 <= metrics["rare_macro_f1"] <= metrics["macro_f1"] + 1.0


def test_the_objective_is_recorded_loaded_and_checked(tiny, tuned, with_thresholds, tmp_path, single_thread):
    with single_thread():
        pooled = tune_generator(tiny.generator, tiny.test_examples, beam_size=2, objective="micro_f1")
    assert tuned.objective == "macro_f1" and pooled.objective == "micro_f1"
    with_thresholds.thresholds = pooled
    folder = with_thresholds.save(tmp_path / "model")
    path = folder / THRESHOLDS_FILE
    data = json.loads(path.read_text())
    assert data["objective"] == "micro_f1"
    loaded = load_model(folder)
    assert loaded.thresholds.objective == "micro_f1"
    np.testing.assert_allclose(loaded.thresholds.values, pooled.values, atol=1e-8)
    del data["objective"]                                             # a file from before the field
    path.write_text(json.dumps(data))
    assert load_model(folder).thresholds.objective == "macro_f1"
    data["objective"] = "accuracy"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match=r"thresholds.json: field 'objective' must be one of"):
        load_model(folder)


def test_pooled_objective_never_lowers_micro_f1_on_the_tuning_data(tiny, single_thread):
    """Coordinate ascent starts from the decoded sets, so pooled F1 on the tuning data cannot fall
    (beyond what the label cap and the one-label floor change, which this sample does not hit)."""
    generator = tiny.generator
    with single_thread():
        pooled = tune_generator(generator, tiny.test_examples, beam_size=2, objective="micro_f1")
        generator.use_thresholds = False
        before = generator.evaluate(tiny.test_examples, beam_size=2)["micro_f1"]
        generator.thresholds, generator.use_thresholds = pooled, True
        try:
            after = generator.evaluate(tiny.test_examples, beam_size=2)["micro_f1"]
        finally:
            generator.thresholds = None
    assert pooled.tuned_count > 0 and after >= before


def test_objective_without_tuning_is_a_config_error():
    from seq2labels.errors import ConfigError
    from seq2labels.pipeline.config import config_from_dict

    with pytest.raises(ConfigError, match="decode.threshold_objective is 'micro_f1' but decode.tune_thresholds"):
        config_from_dict({"decode": {"threshold_objective": "micro_f1"}})
    cfg = config_from_dict({"decode": {"threshold_objective": "micro_f1", "tune_thresholds": True}})
    assert cfg.decode.threshold_objective == "micro_f1"
    with pytest.raises(ConfigError, match="decode.threshold_objective: must be one of"):
        config_from_dict({"decode": {"threshold_objective": "f2", "tune_thresholds": True}})
