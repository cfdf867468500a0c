"""A model folder written before the regroup (tests/fixtures/model_v1, commit 7ce14cb) still loads
and predicts what that commit predicted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seq2labels import LabelGenerator, load_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads((FIXTURES / "model_v1_predictions.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("beam, key", [(3, "predictions"), (1, "greedy")])
def test_the_old_model_folder_predicts_what_its_own_commit_predicted(recorded, beam, key):
    generator = load_model(FIXTURES / "model_v1")
    assert isinstance(generator, LabelGenerator)
    got = [p.to_json() for p in generator.predict(recorded["texts"], beam_size=beam)]
    want = recorded[key]
    assert [g["labels"] for g in got] == [w["labels"] for w in want]
    for g, w in zip(got, want):
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)
        assert g["score"] == pytest.approx(w["score"], abs=1e-5)


def test_the_old_model_folder_keeps_its_config_and_saves_again(tmp_path, recorded):
    generator = LabelGenerator.load(FIXTURES / "model_v1")
    assert generator.model.config.global_embedding
    assert generator.data_summary["train_docs"] is not None
    again = load_model(generator.save(tmp_path / "again"))
    texts = recorded["texts"][:10]
    assert [p.labels for p in again.predict(texts, beam_size=3)] == [p.labels for p in generator.predict(texts, beam_size=3)]
