"""EnsembleGenerator: several trained models, one beam over their mean step distributions."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from seq2labels.errors import ConfigError
from seq2labels.pipeline.ensemble import EnsembleGenerator, load_ensemble

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]


@pytest.fixture(scope="module")
def second(tiny, train_tiny, single_thread):
    """A second tiny model: another seed and another word vocabulary (min_count 2)."""
    cfg = replace(tiny.cfg, text=replace(tiny.cfg.text, min_count=2), train=replace(tiny.cfg.train, seed=1))
    with single_thread():
        generator, _ = train_tiny(cfg)
    return generator


def _json(predictions):
    return [(p.labels, p.probabilities, p.score) for p in predictions]


@pytest.mark.parametrize("beam", [1, 3])
def test_ensemble_of_one_is_that_model_exactly(tiny, test_texts, beam):
    alone = tiny.generator.predict(test_texts, beam_size=beam, return_attention=True)
    together = EnsembleGenerator([tiny.generator]).predict(test_texts, beam_size=beam, return_attention=True)
    assert _json(alone) == _json(together)
    assert all((a.attention == b.attention).all() and a.tokens == b.tokens for a, b in zip(alone, together))


def test_ensemble_of_two_identical_models_is_that_model(tiny, test_texts):
    alone = tiny.generator.predict(test_texts, beam_size=3)
    together = EnsembleGenerator([tiny.generator, tiny.generator]).predict(test_texts, beam_size=3)
    assert [p.labels for p in alone] == [p.labels for p in together]
    for a, b in zip(alone, together):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
        assert a.score == pytest.approx(b.score, abs=1e-5)


def test_members_with_different_vocabularies(tiny, second, test_texts):
    """Another word vocabulary, and the same labels under other ids (another seed's training order)."""
    assert len(second.vocab) != len(tiny.generator.vocab)
    assert second.label_vocab.labels != tiny.generator.label_vocab.labels
    ensemble = EnsembleGenerator([tiny.generator, second])
    preds = ensemble.predict(test_texts, beam_size=2, min_labels=1)
    assert len(preds) == len(test_texts)
    assert all(0.0 < p <= 1.0 for pred in preds for p in pred.probabilities)
    metrics = ensemble.evaluate(tiny.test_examples, beam_size=2)
    assert 0.0 <= metrics["micro_f1"] <= 1.0 and metrics["rare_label_count"] > 0
    # the mean of two different models is neither of them on at least one text
    singles = [[p.probabilities for p in g.predict(test_texts, beam_size=2, min_labels=1)]
               for g in (tiny.generator, second)]
    assert [p.probabilities for p in preds] not in singles


def test_labels_are_the_union_and_disjoint_label_sets_are_refused(tiny, test_texts):
    from seq2labels.data.labels import LabelVocab

    fewer = copy.copy(tiny.generator)                     # the same network, its last label renamed
    labels = list(tiny.generator.label_vocab.labels)
    fewer.label_vocab = LabelVocab(labels[:-1] + ["not_a_label"])
    ensemble = EnsembleGenerator([tiny.generator, fewer])
    assert list(ensemble.label_vocab.labels) == labels + ["not_a_label"]
    assert ensemble.label_maps[1][-2:].tolist() == [-1, fewer.label_vocab.id("not_a_label")]
    preds = ensemble.predict(test_texts, beam_size=3, min_labels=len(labels) + 1, max_labels=len(labels) + 1)
    assert all(sorted(p.labels) == sorted(ensemble.label_vocab.labels) for p in preds)  # every label reachable
    assert all(0.0 <= q <= 1.0 for p in preds for q in p.probabilities)
    disjoint = copy.copy(tiny.generator)
    disjoint.label_vocab = LabelVocab([f"other_{i}" for i in range(len(labels))])
    with pytest.raises(ConfigError, match="member 1 shares no label"):
        EnsembleGenerator([tiny.generator, disjoint])
    with pytest.raises(ConfigError, match="at least one"):
        EnsembleGenerator([])


def test_load_ensemble_of_one_folder_is_the_model(tiny, tmp_path, test_texts):
    folder = tiny.generator.save(tmp_path / "m")
    one = load_ensemble([folder])
    two = load_ensemble([folder, folder])
    assert type(one).__name__ == "LabelGenerator" and isinstance(two, EnsembleGenerator)
    assert [p.labels for p in one.predict(test_texts)] == [p.labels for p in two.predict(test_texts)]


def test_member_label_ids_are_translated(tiny, second, test_texts):
    """The mean is symmetric: members listed in either order (so either member's label ids
    speak for the ensemble) give the same labels and probabilities."""
    ab = EnsembleGenerator([tiny.generator, second])
    ba = EnsembleGenerator([second, tiny.generator])
    assert ab.label_maps[0] is None and ab.label_maps[1] is not None
    for j, label in enumerate(tiny.generator.label_vocab.labels):
        assert int(ab.label_maps[1][j + 3]) == second.label_vocab.id(label)
    first, other = ab.predict(test_texts, beam_size=3, min_labels=1), ba.predict(test_texts, beam_size=3, min_labels=1)
    assert [p.labels for p in first] == [p.labels for p in other]
    for a, b in zip(first, other):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
