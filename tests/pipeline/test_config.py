"""Run configuration: YAML + overrides, and errors that name the key, the field or the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seq2labels.apps.cli import sample_path

from seq2labels.pipeline.config import (RunConfig, TrainConfig, config_from_dict, load_config, merge_overrides,
                               parse_override, save_config_yaml)
from seq2labels.errors import ConfigError


@pytest.fixture
def yaml_file(tmp_path):
    def write(text: str, name: str = "run.yaml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


def test_no_file_and_no_overrides_gives_the_defaults():
    assert load_config() == RunConfig()
    assert load_config(None, []).train == TrainConfig()


def test_yaml_gives_defaults_and_overrides_win(yaml_file):
    path = yaml_file("train:\n  epochs: 5\n  lr: 0.01\nmodel:\n  rnn_type: gru\n")
    cfg = load_config(path, ["train.epochs=7", "decode.beam_size=3"])
    assert cfg.train.epochs == 7                # override beats YAML
    assert cfg.train.lr == 0.01                 # YAML beats the default
    assert cfg.model.rnn_type == "gru"
    assert cfg.decode.beam_size == 3            # override of a section the YAML does not have
    assert cfg.train.batch_size == TrainConfig().batch_size
    # of two overrides of the same key the later wins
    assert load_config(path, ["train.epochs=2", "train.epochs=9"]).train.epochs == 9


def test_overrides_do_not_mutate_the_yaml_mapping():
    data = {"train": {"epochs": 5}}
    merged = merge_overrides(data, [("train", "epochs", 1)])
    assert merged["train"]["epochs"] == 1 and data["train"]["epochs"] == 5


def test_values_are_parsed_as_yaml_and_null_is_allowed_where_the_field_is_optional():
    cfg = load_config(None, ["train.grad_clip=null", "text.max_vocab=~", "train.progress=false",
                             "data.train=data/a b.jsonl", "train.lr=2", "train.device=cuda:1"])
    assert cfg.train.grad_clip is None and cfg.text.max_vocab is None
    assert cfg.train.progress is False
    assert cfg.data.train == "data/a b.jsonl"
    assert cfg.train.lr == 2.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.device == "cuda:1"


@pytest.mark.parametrize("text", ["1e-5", "1E-5", "2e+3", "-1.5e-2", ".5e1"])
def test_exponent_notation_without_a_dot_is_a_number(text, yaml_file):
    """YAML 1.1 reads 1e-5 as a string; so does a CLI flag --lr 1e-5 (json.dumps gives '1e-05')."""
    assert load_config(None, [f"train.lr={text}"]).train.lr == float(text)
    assert load_config(yaml_file(f"train:\n  lr: {text}\n")).train.lr == float(text)


def test_a_non_number_string_for_a_float_field_is_still_an_error():
    with pytest.raises(ConfigError, match=r"train\.lr: expected a number, got 'fast'"):
        load_config(None, ["train.lr=fast"])
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer, got '1e3'"):
        load_config(None, ["train.epochs=1e3"])


# ---- unknown keys ----------------------------------------------------------------------

def test_unknown_key_in_yaml_names_the_key_and_the_file(yaml_file):
    path = yaml_file("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "train.epoch" in message and str(path) in message
    assert "epochs" in message                   # the known keys are listed


def test_unknown_keys_are_all_named():
    with pytest.raises(ConfigError, match=r"model\.hidden \(and model\.layers\)"):
        config_from_dict({"model": {"hidden": 1, "layers": 2}})


def test_unknown_key_in_an_override_names_it():
    with pytest.raises(ConfigError, match=r"unknown config key decode\.beam\b"):
        load_config(None, ["decode.beam=4"])


def test_unknown_section_names_it(yaml_file):
    with pytest.raises(ConfigError, match=r"unknown config section 'trian'"):
        load_config(yaml_file("trian:\n  epochs: 3\n"))
    with pytest.raises(ConfigError, match=r"unknown config section 'optim'"):
        load_config(None, ["optim.lr=0.1"])


# ---- type and value errors ---------------------------------------------------------------

@pytest.mark.parametrize("section, key, value, message", [
    ("train", "epochs", "five", "expected an integer"),
    ("train", "epochs", 2.5, "expected an integer"),
    ("train", "epochs", True, "expected an integer"),
    ("train", "lr", True, "expected a number"),
    ("train", "lr", [0.1], "expected a number"),
    ("model", "bidirectional", 1, "expected true/false"),
    ("model", "bidirectional", "yes please", "expected true/false"),
    ("data", "train", ["a.jsonl"], "expected a string"),
    ("train", "seed", None, "must not be null"),
])
def test_type_errors_name_the_field(section, key, value, message, yaml_file):
    path = yaml_file(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{section}.{key}" in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("override, field", [
    ("labels.order=size", "labels.order"),
    ("model.rnn_type=rnn", "model.rnn_type"),
    ("train.loss=hinge", "train.loss"),
    ("data.format=csv", "data.format"),
    ("data.encoding_errors=ignore", "data.encoding_errors"),
    ("data.valid_fraction=1.5", "data.valid_fraction"),
    ("model.dropout=1", "model.dropout"),
    ("text.min_count=0", "text.min_count"),
    ("train.batch_size=0", "train.batch_size"),
    ("decode.beam_size=0", "decode.beam_size"),
    ("decode.min_labels=11", "decode.min_labels"),
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_a_section_that_is_not_a_mapping_is_an_error(yaml_file):
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        load_config(yaml_file("train: 5\n"))


# ---- files -----------------------------------------------------------------------------

def test_invalid_yaml_names_the_file(yaml_file):
    path = yaml_file("data:\n  train: x\ntrain:\n  epochs: 3\n   lr: 0.1\n", name="broken.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:5: invalid YAML")   # file and line, like a compiler error
    assert "\n" not in message                             # the CLI prints it as one line


def test_missing_file_and_non_mapping_top_level_name_the_file(tmp_path, yaml_file):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(missing)
    path = yaml_file("- train\n- model\n", name="list.yaml")
    with pytest.raises(ConfigError, match=r"list\.yaml: the top level must be a mapping"):
        load_config(path)


def test_non_utf8_file_names_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("data:\n  train: caf\xe9.jsonl\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not valid UTF-8"):
        load_config(path)


def test_empty_file_gives_the_defaults(yaml_file):
    assert load_config(yaml_file("")) == RunConfig()


def test_saved_yaml_reads_back_to_the_same_config(yaml_file):
    cfg = load_config(None, ["train.epochs=3", "model.global_embedding=true", "text.max_vocab=null",
                             "train.lr=1e-4", "data.train=x.jsonl"])
    assert load_config(yaml_file(save_config_yaml(cfg))) == cfg


# ---- override parsing ------------------------------------------------------------------

def test_parse_override_splits_section_key_and_value():
    assert parse_override("train.epochs=3") == ("train", "epochs", 3)
    assert parse_override(" train.lr = 0.5") == ("train", "lr", 0.5)
    assert parse_override("data.train=a=b.jsonl") == ("data", "train", "a=b.jsonl")
    assert parse_override("train.grad_clip=") == ("train", "grad_clip", None)


@pytest.mark.parametrize("text", ["trainepochs=3", "train.epochs", "=3", "epochs=3"])
def test_malformed_overrides_are_errors(text):
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        parse_override(text)
    with pytest.raises(ConfigError):
        load_config(None, [text])


def test_override_with_invalid_yaml_value_is_an_error():
    with pytest.raises(ConfigError, match=r"override 'train\.epochs=\[1,': value is not valid YAML") as err:
        parse_override("train.epochs=[1,")
    assert "\n" not in str(err.value)


# Run configs for `seq2labels train`; compare*.yaml are `seq2labels compare` configs (tests/experiments/test_compare.py)
# and ablation.yaml `seq2labels ablate` specs (checked below).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
SHIPPED_CONFIGS = sorted(p for p in CONFIG_DIR.glob("**/*.yaml")
                         if not p.name.startswith(("compare", "ablation")))


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("**/ablation*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_ablation_specs_are_valid(path):
    from seq2labels.experiments.ablation import load_spec, variant_config

    spec = load_spec(path)
    for variant in spec.variants:      # every variant resolves to a valid run config
        assert isinstance(variant_config(spec, variant), RunConfig)


@pytest.mark.parametrize("path", [*SHIPPED_CONFIGS, Path(sample_path("demo.yaml"))], ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    assert path.is_file()
    assert isinstance(load_config(path), RunConfig)


def test_there_are_shipped_configs():
    assert len(SHIPPED_CONFIGS) >= 2
