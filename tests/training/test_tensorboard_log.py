"""TensorBoard curves: the generic Trainer hands each epoch's row to an observer, which writes
one scalar per epoch; read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2labels.apps.cli import build_parser, resolve_train_config
from seq2labels.pipeline.config import load_config
from seq2labels.errors import ConfigError
from seq2labels.training.loop import Trainer, TrainerConfig
from seq2labels.training.tensorboard_log import TensorBoardCurves

pytestmark = pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")


def read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in the event files under log_dir."""
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_trainer_observer_writes_loss_lr_and_metrics_per_epoch(toy, tmp_path):
    """Any model (here a toy MLP): every field of every metrics row, one point per epoch."""
    config = TrainerConfig(max_epochs=3, patience=5, lr=0.01, monitor="accuracy", progress=False)
    with TensorBoardCurves(tmp_path / "tb") as curves:
        result = Trainer(toy.build_model(), config, **toy.trainer_kwargs(), on_epoch_end=curves).fit()
    scalars = read_scalars(tmp_path / "tb")
    assert set(scalars) == {"train/loss", "train/lr", "train/epoch_seconds", "valid/accuracy", "valid/val_loss"}
    for tag, field in [("train/loss", "train_loss"), ("train/lr", "lr"), ("valid/accuracy", "accuracy"),
                       ("valid/val_loss", "val_loss")]:
        assert [step for step, _ in scalars[tag]] == [1, 2, 3], tag
        expected = [row[field] for row in result.history]
        assert [value for _, value in scalars[tag]] == pytest.approx(expected, rel=1e-6), tag


def test_a_resumed_run_replaces_the_points_after_its_checkpoint(tmp_path):
    """A crash after epoch 3's curves but before its checkpoint: the resumed run redoes epoch 3
    (and 2 here); TensorBoard shows its values, not two points per epoch."""
    with TensorBoardCurves(tmp_path) as curves:
        for epoch in (1, 2, 3):
            curves({"epoch": epoch, "train_loss": 10.0 + epoch, "lr": 0.1, "micro_f1": 0.1 * epoch})
    with TensorBoardCurves(tmp_path) as curves:
        for epoch in (2, 3):
            curves({"epoch": epoch, "train_loss": 20.0 + epoch, "lr": 0.1, "micro_f1": math.nan})
    scalars = read_scalars(tmp_path)
    assert scalars["train/loss"] == [(1, 11.0), (2, 22.0), (3, 23.0)]
    assert scalars["valid/micro_f1"] == [(1, pytest.approx(0.1))]  # NaN is skipped, old 2 and 3 purged


def test_train_tensorboard_true_draws_the_sgm_run_beside_metrics_csv(tiny_cfg, train_tiny, tmp_path, csv_rows):
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, epochs=2, patience=5, tensorboard=True))
    train_tiny(cfg, tmp_path / "run")
    scalars = read_scalars(tmp_path / "run" / "tensorboard")
    rows = csv_rows(tmp_path / "run" / "metrics.csv")
    for tag, field in [("train/loss", "train_loss"), ("train/lr", "lr"), ("valid/micro_f1", "micro_f1"),
                       ("valid/macro_f1", "macro_f1"), ("valid/hamming_loss", "hamming_loss")]:
        assert [step for step, _ in scalars[tag]] == [1, 2], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([float(r[field]) for r in rows], rel=1e-6), tag
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["tensorboard"] is True and saved["train"]["tensorboard_dir"] is None


def test_missing_tensorboard_is_a_config_error_naming_the_extra_before_any_data(tiny_cfg, monkeypatch, tmp_path):
    from seq2labels.pipeline.recipe import train

    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # as if the package were not installed
    cfg = load_config(None, ["train.tensorboard=true", f"data.train={tmp_path / 'never-read.jsonl'}"])
    with pytest.raises(ConfigError, match=r"pip install 'seq2labels\[tensorboard\]'"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tensorboard_needs_somewhere_to_write(tiny_cfg, train_tiny):
    cfg = load_config(None, ["train.tensorboard=true"])
    with pytest.raises(ConfigError, match="run folder or train.tensorboard_dir"):
        train_tiny(cfg, None)


def test_tensorboard_dir_alone_is_an_error_not_silence():
    with pytest.raises(ConfigError, match="train.tensorboard is false"):
        load_config(None, ["train.tensorboard_dir=runs/tb"])


@pytest.mark.parametrize("argv, enabled, folder", [
    ([], False, None),
    (["--tensorboard"], True, None),
    (["--tensorboard-dir", "runs/tb"], True, "runs/tb"),
    (["--set", "train.tensorboard=true"], True, None),
])
def test_cli_flag(argv, enabled, folder):
    args = build_parser().parse_args(["train", *argv, "config.yaml"])  # a flag never swallows the config
    assert args.config == "config.yaml"
    args.config = None
    cfg = resolve_train_config(args)
    assert (cfg.train.tensorboard, cfg.train.tensorboard_dir) == (enabled, folder)

