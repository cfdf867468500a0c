"""The command line with several model folders (ensembles) and per-label thresholds."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from seq2labels.apps.cli import main
from seq2labels.pipeline.ensemble import EnsembleGenerator
from seq2labels.pipeline.generator import load_model

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]


def run_main(argv) -> tuple[int, str, str]:
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def folders(tiny, train_tiny, single_thread, tmp_path_factory, write_jsonl):
    root = tmp_path_factory.mktemp("ens")
    cfg = replace(tiny.cfg, text=replace(tiny.cfg.text, min_count=2), train=replace(tiny.cfg.train, seed=1))
    with single_thread():
        second, _ = train_tiny(cfg)
    no_counts = copy.copy(tiny.generator)
    no_counts.data_summary = None
    return {"a": tiny.generator.save(root / "a"), "b": second.save(root / "b"),
            "old": no_counts.save(root / "old"),
            "valid": write_jsonl(root / "valid.jsonl", tiny.test_examples[:80]),
            "test": write_jsonl(root / "test.jsonl", tiny.test_examples[80:]), "root": root}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_with_two_model_folders_is_their_ensemble(folders, tiny):
    out = folders["root"] / "ens.jsonl"
    code, _, err = run_main(["predict", folders["a"], folders["b"], folders["test"], "-o", out, "--beam-size", 2,
                             "--min-labels", 1, "-q"])
    assert code == 0, err
    expected = EnsembleGenerator([load_model(folders["a"]), load_model(folders["b"])]).predict(
        [ex.text for ex in tiny.test_examples[80:]], beam_size=2, min_labels=1)
    assert read_jsonl(out) == [p.to_json() for p in expected]
    single = folders["root"] / "single.jsonl"                         # the old invocation is unchanged
    assert run_main(["predict", folders["a"], folders["test"], "-o", single, "--beam-size", 2, "--min-labels", 1,
                     "-q"])[0] == 0
    assert read_jsonl(single) == [p.to_json() for p in load_model(folders["a"]).predict(
        [ex.text for ex in tiny.test_examples[80:]], beam_size=2, min_labels=1)]
    assert read_jsonl(single) != read_jsonl(out)


def test_predict_needs_an_input_after_the_models(folders, capsys):
    code, _, err = run_main(["predict", folders["a"], folders["b"], "-q"])
    assert code == 2 and "no input file after the model folder(s)" in err


def test_evaluate_with_two_model_folders(folders, tiny):
    out = folders["root"] / "ens_metrics.json"
    code, stdout, err = run_main(["evaluate", folders["a"], folders["b"], folders["test"], "--beam-size", 2,
                                  "--output", out, "-q"])
    assert code == 0, err
    metrics = json.loads(out.read_text())
    expected = EnsembleGenerator([load_model(folders["a"]), load_model(folders["b"])]).evaluate(
        tiny.test_examples[80:], beam_size=2)
    assert metrics["micro_f1"] == pytest.approx(expected["micro_f1"])
    assert metrics["rare_macro_f1"] == pytest.approx(expected["rare_macro_f1"])
    assert "rare_macro_f1" in stdout and "rare_label_count" in stdout


def test_evaluate_says_when_training_counts_are_missing(folders):
    out = folders["root"] / "old_metrics.json"
    code, stdout, err = run_main(["evaluate", folders["old"], folders["test"], "--output", out, "-q"])
    assert code == 0, err
    assert "rare_macro_f1: n/a (the model folder records no training label counts" in stdout
    assert json.loads(out.read_text())["rare_macro_f1"] is None


def test_tune_thresholds_then_predict_evaluate_apply_them_unless_switched_off(folders, tmp_path, tiny):
    import shutil

    model = shutil.copytree(folders["a"], tmp_path / "m")
    code, stdout, err = run_main(["tune-thresholds", model, folders["valid"], "--beam-size", 2, "-q"])
    assert code == 0, err
    assert (model / "thresholds.json").is_file() and "thresholds for" in stdout
    tuned = load_model(model)
    assert tuned.thresholds.tuned_count > 0 and tuned.thresholds.beam_size == 2
    texts = [ex.text for ex in tiny.test_examples[80:]]
    on, off = tmp_path / "on.jsonl", tmp_path / "off.jsonl"
    assert run_main(["predict", model, folders["test"], "-o", on, "--beam-size", 2, "-q"])[0] == 0
    assert run_main(["predict", model, folders["test"], "-o", off, "--beam-size", 2, "--no-thresholds", "-q"])[0] == 0
    assert read_jsonl(on) == [p.to_json() for p in tuned.predict(texts, beam_size=2)]
    assert read_jsonl(off) == [p.to_json() for p in load_model(folders["a"]).predict(texts, beam_size=2)]
    assert read_jsonl(on) != read_jsonl(off)
    metrics_on, metrics_off = tmp_path / "on.json", tmp_path / "off.json"
    assert run_main(["evaluate", model, folders["test"], "--beam-size", 2, "--output", metrics_on, "-q"])[0] == 0
    assert run_main(["evaluate", model, folders["test"], "--beam-size", 2, "--no-thresholds",
                     "--output", metrics_off, "-q"])[0] == 0
    on_m, off_m = json.loads(metrics_on.read_text()), json.loads(metrics_off.read_text())
    assert on_m["threshold_labels"] == tuned.thresholds.tuned_count and off_m["threshold_labels"] == 0
    assert on_m["micro_f1"] != off_m["micro_f1"]


def test_tune_thresholds_objective_flag(folders, tmp_path):
    import shutil

    model = shutil.copytree(folders["a"], tmp_path / "m")
    code, stdout, err = run_main(["tune-thresholds", model, folders["valid"], "--beam-size", 2,
                                  "--objective", "micro_f1", "-q"])
    assert code == 0, err
    assert "(micro_f1," in stdout
    assert json.loads((model / "thresholds.json").read_text())["objective"] == "micro_f1"
    assert load_model(model).thresholds.objective == "micro_f1"
    with pytest.raises(SystemExit) as exited:                         # argparse: usage error, exit 2
        run_main(["tune-thresholds", model, folders["valid"], "--objective", "f2", "-q"])
    assert exited.value.code == 2


def test_serve_applies_the_thresholds(folders, tmp_path, tiny):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import shutil

    from fastapi.testclient import TestClient

    from seq2labels.apps.serve import ServeSettings, ServerOptions, load_for_serving

    model = shutil.copytree(folders["a"], tmp_path / "m")
    assert run_main(["tune-thresholds", model, folders["valid"], "--beam-size", 2, "-q"])[0] == 0
    texts = [ex.text for ex in tiny.test_examples[80:100]]
    for thresholds in (True, False):
        app = load_for_serving(ServerOptions(model=str(model), thresholds=thresholds,
                                             settings=ServeSettings(beam_size=2)))
        with TestClient(app) as client:
            got = client.post("/predict", json={"texts": texts}).json()["predictions"]
        reference = load_model(model)
        reference.use_thresholds = thresholds
        assert [p["labels"] for p in got] == [p.labels for p in reference.predict(texts, beam_size=2)]
