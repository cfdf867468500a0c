"""Cross-data-set evaluation: label matching, mapping files, drop counts, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seq2labels.apps.cli import main
from seq2labels.experiments.crossdata import (
    LabelMapping,
    align_labels,
    cross_evaluate,
    evaluate_estimator,
    evaluate_generator,
    indicator_to_label_lists,
    read_label_map,
)
from seq2labels.data.readers import Example
from seq2labels.errors import ConfigError, DataFormatError
from seq2labels.evaluation.metrics import METRIC_NAMES, evaluate_label_lists

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL_LABELS = ["earn", "acq", "wheat", "corn", "grain", "ship"]
GOLD = [["earn"], ["grain", "trade"], ["trade"], ["grain"]]
PRED = [["earn", "acq"], ["wheat", "grain"], ["ship"], ["earn"]]
GRAINS = {"wheat": "grain", "corn": "grain"}


# --------------------------------------------------------------------------- hand-made example


def test_shared_labels_drops_and_metrics_by_hand():
    report = cross_evaluate(GOLD, PRED, MODEL_LABELS, mapping=GRAINS)
    a = report.alignment
    assert a.shared == ["earn", "grain"]                  # data order (sorted labels of the gold lists)
    assert a.model_only == ["acq", "ship"] and a.data_only == ["trade"]
    assert a.mapped == GRAINS
    # doc 2 keeps no gold label -> dropped; 'trade' dropped twice; 'acq' and 'ship' predictions dropped;
    # doc 1 predicts wheat -> grain and grain: one merged repeat
    assert (report.n_docs_in, report.docs_dropped) == (4, 1)
    assert (report.gold_labels_dropped, report.pred_labels_dropped, report.pred_labels_merged) == (2, 2, 1)
    m = report.metrics
    # 3 docs x 2 labels: tp = earn@0 + grain@1, fp = earn@3, fn = grain@3
    assert m["n_docs"] == 3
    assert m["micro_precision"] == pytest.approx(2 / 3) and m["micro_recall"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(2 / 3) and m["macro_f1"] == pytest.approx(2 / 3)
    assert m["subset_accuracy"] == pytest.approx(2 / 3) and m["example_f1"] == pytest.approx(2 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 6)
    assert m["label_position_deviation"] == 0.0
    # the same numbers as the metrics module on the hand-restricted lists
    expected = evaluate_label_lists([["earn"], ["grain"], ["grain"]], [["earn"], ["grain"], ["earn"]],
                                    ["earn", "grain"])
    assert m == expected
    summary = report.to_dict()["crossdata"]
    assert summary["labels"]["n_shared"] == 2 and summary["labels"]["n_model_only"] == 2
    assert summary["labels"]["n_data_only"] == 1 and summary["n_docs_evaluated"] == 3
    assert summary["n_model_labels"] == 6 and summary["n_data_labels"] == 3


def test_keep_unlabelled_scores_the_emptied_document():
    report = cross_evaluate(GOLD, PRED, MODEL_LABELS, mapping=GRAINS, keep_unlabelled=True)
    m = report.metrics
    assert report.docs_dropped == 0 and m["n_docs"] == 4
    assert m["micro_f1"] == pytest.approx(2 / 3)           # doc 2 now has no gold and no shared prediction
    assert m["subset_accuracy"] == pytest.approx(3 / 4)    # empty == empty counts as an exact match
    assert m["example_f1"] == pytest.approx(2 / 4)         # ... but scores 0 by example (zero_division=0)
    assert m["hamming_loss"] == pytest.approx(2 / 8)


def test_without_the_mapping_mapped_predictions_are_dropped():
    report = cross_evaluate(GOLD, PRED, MODEL_LABELS)
    assert report.alignment.model_only == ["acq", "wheat", "corn", "ship"]
    assert report.pred_labels_dropped == 3 and report.pred_labels_merged == 0


def test_mapping_keeps_the_first_position_of_merged_labels():
    report = cross_evaluate([["grain", "earn"]], [["corn", "earn", "wheat"]], MODEL_LABELS, mapping=GRAINS)
    assert report.metrics["micro_f1"] == 1.0 and report.pred_labels_merged == 1
    assert report.metrics["label_position_deviation"] == 0.0   # grain at 0, earn at 1 in both


def test_casefold_matching_names_the_shared_labels_as_the_data_does():
    with pytest.raises(ConfigError, match="share none.*--label-map"):
        cross_evaluate([["grain"]], [["Grain"]], ["Grain", "EARN"])
    report = cross_evaluate([["grain"], ["earn"]], [["Grain"], ["Grain"]], ["Grain", "EARN"], match="casefold")
    assert report.alignment.model_to_shared == {"Grain": "grain", "EARN": "earn"}
    assert report.metrics["micro_precision"] == 0.5 and report.metrics["micro_recall"] == 0.5


def test_casefold_ambiguity_is_an_error_unless_exact():
    with pytest.raises(ConfigError, match="several data labels"):
        align_labels(["GRAIN"], ["grain", "Grain"], match="casefold")
    assert align_labels(["Grain"], ["grain", "Grain"], match="casefold").model_to_shared == {"Grain": "Grain"}


def test_match_none_uses_only_the_mapping():
    a = align_labels(["earn", "wheat"], ["earn", "grain"], match="none", mapping={"wheat": "grain"})
    assert a.model_to_shared == {"wheat": "grain"} and a.model_only == ["earn"] and a.data_only == ["earn"]


def test_predictions_outside_the_model_labels_are_refused():
    with pytest.raises(ValueError, match="'bogus'"):
        cross_evaluate([["earn"]], [["bogus"]], MODEL_LABELS)


# --------------------------------------------------------------------------- mapping files


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_mapping_with_header_comments_and_blank_lines(tmp_path):
    path = _write(tmp_path / "map.tsv", "model_label\tdata_label\n# grains\n\nwheat\tgrain\ncorn\t grain \n")
    mapping = read_label_map(path)
    assert mapping.pairs == GRAINS and mapping.lines == {"wheat": 4, "corn": 5}


def test_json_mapping_records_lines(tmp_path):
    path = _write(tmp_path / "map.json", '{\n  "wheat": "grain",\n\n  "corn": "grain"\n}\n')
    mapping = read_label_map(path)
    assert mapping.pairs == GRAINS and mapping.lines == {"wheat": 2, "corn": 4}


@pytest.mark.parametrize("name, text, needle", [
    ("map.tsv", "wheat\tgrain\ncorn\n", r"map.tsv:2: expected 'model_label<TAB>data_label'"),
    ("map.tsv", "wheat\tgrain\ncorn\tgrain\textra\n", r"map.tsv:2: expected"),
    ("map.tsv", "wheat\tgrain\n\nwheat\tcorn\n", r"map.tsv:3: model label 'wheat' is mapped twice \(first at line 1\)"),
    ("map.tsv", "# nothing\n", r"map.tsv: the label mapping has no rows"),
    ("map.json", '{"wheat": "grain",\n "corn": 3}', r"map.json:2: 'corn': the mapping needs a non-empty data label"),
    ("map.json", '{"wheat": "grain",\n "wheat": "corn"}', r"map.json:2: model label 'wheat' is mapped twice"),
    ("map.json", '{"wheat": "grain"\n "corn": "grain"}', r"map.json:2: expected ',' or '}'"),
    ("map.json", '["wheat", "grain"]', r"map.json:1: expected one JSON object"),
    ("map.json", '{"wheat": "grain"}\n{}', r"map.json:2: extra data"),
])
def test_malformed_mapping_files_name_file_and_line(tmp_path, name, text, needle):
    with pytest.raises(DataFormatError, match=needle):
        read_label_map(_write(tmp_path / name, text))


def test_mapping_labels_must_exist_on_their_side(tmp_path):
    path = _write(tmp_path / "map.tsv", "wheat\tgrain\nwheet\tgrain\n")
    with pytest.raises(ConfigError, match=r"map.tsv:2: model label 'wheet' is not one of the model's 6 labels"):
        cross_evaluate(GOLD, PRED, MODEL_LABELS, mapping=read_label_map(path))
    path = _write(tmp_path / "map2.tsv", "wheat\tgrain\ncorn\tmaize\n")
    with pytest.raises(ConfigError, match=r"map2.tsv:2: data label 'maize' does not occur in the data"):
        cross_evaluate(GOLD, PRED, MODEL_LABELS, mapping=read_label_map(path))
    path = _write(tmp_path / "swapped.tsv", "trade\tacq\n")
    with pytest.raises(ConfigError, match=r"swapped.tsv:1: .*'trade'.*columns are model_label, data_label"):
        cross_evaluate(GOLD, PRED, MODEL_LABELS, mapping=read_label_map(path))


def test_in_memory_mapping_errors_say_label_mapping():
    with pytest.raises(ConfigError, match="label mapping: model label 'rye'"):
        align_labels(MODEL_LABELS, ["grain"], mapping={"rye": "grain"})
    with pytest.raises(ConfigError, match="must be strings"):
        LabelMapping.from_dict({"wheat": 1})


# --------------------------------------------------------------------------- models


def test_estimator_path_takes_indicator_columns_by_name():
    class Fixed:                                    # any fitted baseline: predict -> (n, L) 0/1
        def predict(self, X):
            return np.array([[1, 0, 1], [0, 1, 1]])

    assert indicator_to_label_lists(np.array([[1, 0, 1]]), ["a", "b", "c"]) == [["a", "c"]]
    report = evaluate_estimator(Fixed(), [[0.0], [1.0]], [["a"], ["grain"]], ["a", "b", "wheat"],
                                mapping={"wheat": "grain"})
    # doc 0: pred a, grain vs gold a; doc 1: pred grain (b dropped) vs gold grain
    assert report.metrics["micro_precision"] == pytest.approx(2 / 3) and report.metrics["micro_recall"] == 1.0
    assert report.pred_labels_dropped == 1 and report.alignment.model_only == ["b"]


def test_generator_with_every_label_shared_matches_plain_evaluate(tiny):
    known = set(tiny.generator.label_vocab.labels)
    examples = [Example(ex.text, tuple(lab for lab in ex.labels if lab in known)) for ex in tiny.test_examples]
    examples = [ex for ex in examples if ex.labels]
    plain = tiny.generator.evaluate(examples, beam_size=1)
    report = evaluate_generator(tiny.generator, examples, beam_size=1,
                                data_labels=tiny.generator.label_vocab.labels)
    assert report.docs_dropped == 0 and report.gold_labels_dropped == 0 and report.pred_labels_dropped == 0
    for key in (*METRIC_NAMES, "label_position_deviation"):
        assert report.metrics[key] == pytest.approx(plain[key], abs=1e-12), key


def test_model_rank_orders_gold_like_training_and_merges_take_the_earliest_rank():
    rank = {"earn": 0, "grain": 1, "wheat": 2, "acq": 3}
    gold, pred = [["acq", "grain", "earn"]], [["earn", "grain", "acq"]]
    plain = cross_evaluate(gold, pred, list(rank))
    ordered = cross_evaluate(gold, pred, list(rank), model_rank=rank)
    assert plain.metrics["label_position_deviation"] == pytest.approx(4 / 3)   # earn 2->0, grain 1->1, acq 0->2
    assert ordered.metrics["label_position_deviation"] == 0.0                # gold becomes earn, grain, acq
    unmerged = cross_evaluate([["grain", "earn"]], [["earn", "grain"]], list(rank),
                              model_rank={"earn": 2, "grain": 3, "wheat": 0, "acq": 1})
    assert unmerged.metrics["label_position_deviation"] == 0.0               # gold becomes earn, grain
    merged = cross_evaluate([["grain", "earn"]], [["earn", "grain"]], list(rank), mapping={"wheat": "grain"},
                            model_rank={"earn": 2, "grain": 3, "wheat": 0, "acq": 1})
    assert merged.metrics["label_position_deviation"] == 1.0                       # grain ranks as wheat (0)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def renamed_data(tiny, tmp_path, write_jsonl):
    """The tiny model's test texts with the model's two most frequent labels renamed in the gold."""
    first, second = tiny.generator.label_vocab.labels[:2]
    rename = {first: first.upper(), second: "merged"}
    examples = [Example(ex.text, tuple(dict.fromkeys(rename.get(lab, lab) for lab in ex.labels)))
                for ex in tiny.test_examples]
    data = write_jsonl(tmp_path / "other.jsonl", examples)
    mapping = _write(tmp_path / "map.tsv", f"model_label\tdata_label\n{second}\tmerged\n")
    return data, mapping, examples, rename


def test_cli_evaluate_with_label_map_writes_drop_counts(tiny, tmp_path, renamed_data, capsys):
    data, mapping, examples, rename = renamed_data
    model = tiny.generator.save(tmp_path / "model")
    out = tmp_path / "metrics.json"
    rc = main(["evaluate", str(model), str(data), "--label-map", str(mapping), "--match-labels", "casefold",
               "--beam-size", "1", "--output", str(out), "-q"])
    assert rc == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    block = result["crossdata"]
    assert block["match"] == "casefold" and block["label_map"] == str(mapping)
    first, second = tiny.generator.label_vocab.labels[:2]
    assert block["labels"]["mapped"] == {second: "merged"}
    expected = evaluate_generator(tiny.generator, examples, beam_size=1, match="casefold",
                                  mapping={second: "merged"})
    assert block["docs_dropped_no_shared_gold"] == expected.docs_dropped
    assert block["gold_labels_dropped"] == expected.gold_labels_dropped
    assert block["labels"]["n_shared"] == len(expected.alignment.shared)
    assert first.upper() in expected.alignment.shared and "merged" in expected.alignment.shared
    for key in METRIC_NAMES:
        assert result[key] == pytest.approx(expected.metrics[key], abs=1e-12), key
    printed = capsys.readouterr().out
    assert "docs_dropped" in printed and "shared_labels" in printed


def test_cli_mapping_error_is_one_line_exit_2(tiny, tmp_path, renamed_data, capsys):
    data, _, _, _ = renamed_data
    model = tiny.generator.save(tmp_path / "model")
    bad = _write(tmp_path / "bad.tsv", "no-such-label\tmerged\n")
    assert main(["evaluate", str(model), str(data), "--label-map", str(bad), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.tsv:1: model label 'no-such-label'" in err
    assert main(["evaluate", str(model), str(data), "--keep-unlabelled", "-q"]) == 2
    assert "--keep-unlabelled" in capsys.readouterr().err
