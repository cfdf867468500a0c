"""The ablation command: spec validation, resumable variants and the table."""

import json
from pathlib import Path

import pytest

from seq2labels.experiments.ablation import collect_rows, load_spec, parse_spec, run_ablation, select_variants
from seq2labels.apps.cli import main
from seq2labels.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "seq2labels" / "samples"

BASE = """
text: {max_len: 16, min_count: 1}
model: {embedding_dim: 8, encoder_hidden: 8, label_embedding_dim: 8, decoder_hidden: 8, self_attention: true,
        self_attention_heads: 2, global_embedding: true}
train: {epochs: 1, batch_size: 32, seed: 0, threads: 1}
decode: {beam_size: 2, max_labels: 4}
"""


def _write_data(folder: Path, n: int) -> tuple[Path, Path]:
    import gzip
    with gzip.open(SAMPLE / "goemotions_train.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(n)]
    train, test = folder / "train.jsonl", folder / "test.jsonl"
    train.write_text("".join(lines[: n - 60]), encoding="utf-8")
    test.write_text("".join(lines[n - 60:]), encoding="utf-8")
    return train, test


@pytest.fixture()
def spec_file(tmp_path):
    train, test = _write_data(tmp_path, 300)
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    spec = {"name": "tiny", "base": "base.yaml", "data": {"train": str(train), "test": str(test)}, "decode": [1, 2],
            "variants": [{"name": "full"}, {"name": "no mask", "set": {"model.mask_repeats": False}},
                         {"name": "alphabetical order", "set": {"labels.order": "alphabetical"}}]}
    path = tmp_path / "ablation.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")   # JSON is YAML
    return path


def test_spec_resolves_base_next_to_the_file_and_renders_overrides(spec_file):
    spec = load_spec(spec_file)
    assert spec.base == spec_file.parent / "base.yaml"
    assert spec.variants[1].overrides == ("model.mask_repeats=false",)
    assert spec.beam_sizes == (1, 2)
    assert [v.slug for v in spec.variants] == ["full", "no-mask", "alphabetical-order"]


@pytest.mark.parametrize("raw, message", [
    ({"base": "b", "data": {"train": "a", "test": "b"}, "variants": [{"name": "x"}], "colour": 1}, "unknown key"),
    ({"base": "b", "data": {"train": "a"}, "variants": [{"name": "x"}]}, "needs 'train' and 'test'"),
    ({"base": "b", "data": {"train": "a", "test": "b"}, "variants": []}, "non-empty list"),
    ({"base": "b", "data": {"train": "a", "test": "b"}, "variants": [{"name": "A b"}, {"name": "a-b"}]}, "clash"),
    ({"base": "b", "data": {"train": "a", "test": "b"}, "variants": [{"name": "x", "sett": {}}]}, "unknown key"),
    ({"base": "b", "data": {"train": "a", "test": "b"}, "variants": [{"name": "x"}], "decode": [0]}, "beam sizes"),
])
def test_bad_specs_name_the_problem(raw, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        parse_spec(raw, tmp_path / "spec.yaml")


def test_only_selects_by_name_or_slug_and_rejects_unknown(spec_file):
    spec = load_spec(spec_file)
    assert [v.name for v in select_variants(spec, ["no-mask", "full"])] == ["no mask", "full"]
    with pytest.raises(ConfigError, match="no variant named 'nope'"):
        select_variants(spec, ["nope"])


def test_variants_train_once_and_the_table_reports_deltas(spec_file, tmp_path):
    spec = load_spec(spec_file)
    results = tmp_path / "results"
    paths = run_ablation(spec, tmp_path / "runs", results, only=["full", "no mask"])
    rows = collect_rows(spec, results)
    assert [r["variant"] for r in rows] == ["full", "no mask"]
    assert rows[0]["delta_micro_f1"] == 0.0
    assert rows[1]["delta_micro_f1"] == pytest.approx(rows[1]["micro_f1"] - rows[0]["micro_f1"])
    record = json.loads((results / "ablation_tiny" / "no-mask.json").read_text())
    assert record["config"]["model"]["mask_repeats"] is False and set(record["test"]) == {"beam1", "beam2"}
    assert "git_commit" in record and record["data"]
    assert (tmp_path / "runs" / "no-mask" / "model" / "model.safetensors").is_file()   # kept for later decoding
    markdown = paths["md"].read_text()
    assert "Not run yet: alphabetical order" in markdown and "`model.mask_repeats=false`" in markdown
    # A second run skips the finished variants: their result files stay untouched.
    before = (results / "ablation_tiny" / "full.json").stat().st_mtime_ns
    run_ablation(spec, tmp_path / "runs", results, only=["full"])
    assert (results / "ablation_tiny" / "full.json").stat().st_mtime_ns == before


def test_cli_table_only_and_a_missing_spec(spec_file, tmp_path, capsys):
    assert main(["ablate", str(spec_file), "--out", str(tmp_path / "r"), "--table-only", "-q"]) == 0
    assert "Not run yet: full, no mask, alphabetical order" in capsys.readouterr().out
    assert main(["ablate", str(tmp_path / "missing.yaml"), "-q"]) == 2
    assert "config file not found" in capsys.readouterr().err


@pytest.fixture()
def seeded_spec_file(spec_file):
    spec = json.loads(spec_file.read_text())
    spec.update(name="seeded", seeds=[0, 1], peers="peers.yaml", variants=spec["variants"][:2])
    (spec_file.parent / "peers.yaml").write_text(json.dumps({
        "name": "peers", "data": {"name": "tiny", "train": spec["data"]["train"], "test": spec["data"]["test"]},
        "fallback_top1": True,
        "methods": [{"name": "br", "label": "BR (LinearSVC, top-1 fallback)",
                     "params": {"classifier": {"name": "linear_svc"}}}]}), encoding="utf-8")
    path = spec_file.parent / "seeded.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def test_seeds_train_each_variant_per_seed_and_the_table_shows_mean_and_std(seeded_spec_file, tmp_path):
    spec = load_spec(seeded_spec_file)
    assert spec.seeds == (0, 1) and spec.peers == seeded_spec_file.parent / "peers.yaml"
    results = tmp_path / "results"
    paths = run_ablation(spec, tmp_path / "runs", results, only=["full"])
    folder = results / "ablation_seeded"
    runs = [json.loads((folder / f"full-seed{s}.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in runs] == [0, 1] and [r["config"]["train"]["seed"] for r in runs] == [0, 1]
    rows = collect_rows(spec, results)
    full, peer = rows[0], rows[-1]
    values = [r["test"]["beam2"]["micro_f1"] for r in runs]
    assert full["n_seeds"] == 2 and full["micro_f1"] == pytest.approx(sum(values) / 2)
    assert full["micro_f1_std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert peer["kind"] == "peer" and peer["variant"] == "BR (LinearSVC, top-1 fallback)" and 0 < peer["micro_f1"] <= 1
    markdown = paths["md"].read_text()
    assert "±" in markdown and "Not run yet: no mask" in markdown and "BR (LinearSVC, top-1 fallback)" in markdown
    # Only the missing seed of the next variant runs; the peers ran once and are not rerun.
    peers_mtime = (folder / "peers.json").stat().st_mtime_ns
    run_ablation(spec, tmp_path / "runs", results, only=["no mask"], seeds=[1])
    assert (folder / "no-mask-seed1.json").exists() and not (folder / "no-mask-seed0.json").exists()
    assert (folder / "peers.json").stat().st_mtime_ns == peers_mtime
    assert collect_rows(spec, results)[1]["n_seeds"] == 1


def test_seed_selection_is_checked(seeded_spec_file, spec_file, tmp_path):
    with pytest.raises(ConfigError, match="not in the config's seeds"):
        run_ablation(load_spec(seeded_spec_file), tmp_path / "runs", tmp_path / "r", seeds=[7])
    with pytest.raises(ConfigError, match="needs a 'seeds' list"):
        run_ablation(load_spec(spec_file), tmp_path / "runs", tmp_path / "r", seeds=[0])
    with pytest.raises(ConfigError, match="distinct integers"):
        parse_spec({"base": "b", "data": {"train": "a", "test": "b"}, "variants": [{"name": "x"}], "seeds": [1, 1]},
                   tmp_path / "spec.yaml")


def test_rows_from_different_cpus_get_a_note_naming_them():
    from seq2labels.experiments.ablation import cpu_note
    rows = [{"variant": "full", "kind": "sgm", "cpus": ["Intel Xeon"]},
            {"variant": "hungarian", "kind": "sgm", "cpus": ["AMD EPYC"]},
            {"variant": "BR", "kind": "peer"}]
    note = cpu_note(rows)
    assert note.startswith("Note: these runs trained on 2 CPU models")
    assert "AMD EPYC: hungarian" in note and "Intel Xeon: full" in note
    assert cpu_note([{**rows[0]}, {**rows[1], "cpus": ["Intel Xeon"]}]) is None
