"""Behaviour of the generic Trainer on a toy problem (see conftest.py)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from seq2labels.training import Trainer, TrainerConfig

FIXED = ["epoch", "train_loss", "lr", "epoch_seconds"]


def _config(**overrides) -> TrainerConfig:
    base = TrainerConfig(max_epochs=6, patience=3, lr=1e-2, monitor="accuracy", progress=False, seed=3)
    return replace(base, **overrides)


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name


def _assert_same_last_epoch(dir_a, dir_b) -> None:
    """The checkpoint holds the last epoch's weights and optimizer state, which the
    returned (best) weights may hide when the best epoch came before the interruption."""
    a = torch.load(dir_a / "checkpoint.pt", weights_only=True)
    b = torch.load(dir_b / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"]
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for index, param_state in a["optimizer"]["state"].items():
        for key, value in param_state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][key]), (index, key)


def _rows_without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]


# ------------------------------------------------------------------ learning


def test_loss_decreases_and_accuracy_is_reached(toy, tmp_path):
    model = toy.build_model()
    result = Trainer(model, _config(max_epochs=8), run_dir=tmp_path, **toy.trainer_kwargs()).fit()

    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] / 2
    assert result.best_score >= 0.9
    assert toy.evaluate(model.eval())["accuracy"] == result.best_score  # model ends on the best weights
    assert result.best_metrics["accuracy"] == result.best_score
    assert result.epochs_run == len(result.history)
    assert result.seconds > 0


def test_metrics_csv_has_one_row_per_epoch(toy, tmp_path, csv_rows):
    result = Trainer(toy.build_model(), _config(max_epochs=4, patience=10), run_dir=tmp_path,
                     **toy.trainer_kwargs()).fit()

    rows = csv_rows(tmp_path / "metrics.csv")
    assert list(rows[0]) == FIXED + ["accuracy", "val_loss"]
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4] == [r["epoch"] for r in result.history]
    assert [float(row["train_loss"]) for row in rows] == [r["train_loss"] for r in result.history]
    assert all(float(row["lr"]) > 0 and float(row["epoch_seconds"]) >= 0 for row in rows)


def test_best_safetensors_equals_returned_weights(toy, tmp_path):
    model = toy.build_model()
    result = Trainer(model, _config(), run_dir=tmp_path, **toy.trainer_kwargs()).fit()

    saved = load_file(str(tmp_path / "best.safetensors"))
    live = model.state_dict()
    assert saved.keys() == live.keys()
    for name, tensor in saved.items():
        assert torch.equal(tensor, live[name]), name
    with safe_open(str(tmp_path / "best.safetensors"), framework="pt") as handle:
        assert handle.metadata()["epoch"] == str(result.best_epoch)


def test_scripted_scores_choose_best_epoch_and_stop_early(toy, tmp_path, scripted):
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    calls: list[float] = []

    def on_best(model: nn.Module, metrics: dict) -> None:
        calls.append(metrics["score"])
        snapshots[len(calls)] = {k: v.clone() for k, v in model.state_dict().items()}

    model = toy.build_model()
    kwargs = toy.trainer_kwargs() | {"evaluate_fn": scripted([0.1, 0.5, 0.4, 0.3, 0.2, 0.9, 1.0])}
    result = Trainer(model, _config(monitor="score", patience=3, max_epochs=7), run_dir=tmp_path,
                     on_best=on_best, **kwargs).fit()

    assert result.best_epoch == 2
    assert result.best_score == 0.5
    assert result.stopped_early is True
    assert result.epochs_run == 5  # epochs 3, 4, 5 without improvement, then stop
    assert calls == [0.1, 0.5]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, snapshots[2][name]), name


def test_mode_min_prefers_lower_scores(toy, scripted):
    kwargs = toy.trainer_kwargs() | {"evaluate_fn": scripted([0.9, 0.3, 0.4, 0.2])}
    result = Trainer(toy.build_model(), _config(monitor="score", mode="min", max_epochs=4), **kwargs).fit()
    assert (result.best_epoch, result.best_score, result.stopped_early) == (4, 0.2, False)


def test_patience_ending_on_last_epoch_is_not_an_early_stop(toy, scripted):
    kwargs = toy.trainer_kwargs() | {"evaluate_fn": scripted([0.5, 0.4, 0.3])}
    result = Trainer(toy.build_model(), _config(monitor="score", patience=2, max_epochs=3), **kwargs).fit()
    assert (result.best_epoch, result.epochs_run, result.stopped_early) == (1, 3, False)


def test_without_run_dir_nothing_is_written(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = Trainer(toy.build_model(), _config(max_epochs=2), **toy.trainer_kwargs()).fit()
    assert result.epochs_run == 2
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_is_silent_without_a_tty(toy, capsys):
    Trainer(toy.build_model(), _config(max_epochs=1, progress=True), **toy.trainer_kwargs()).fit()
    assert capsys.readouterr().err == ""


def test_batches_with_a_to_method_are_moved(toy):
    class Batch:
        moved_to: list[torch.device] = []

        def __init__(self, x, y):
            self.x, self.y = x, y

        def to(self, device):
            Batch.moved_to.append(device)
            return self

    def make_batches(epoch):
        return [Batch(x, y) for x, y in toy.make_batches(epoch)]

    def loss_fn(model, batch):
        assert isinstance(batch, Batch)
        return nn.functional.cross_entropy(model(batch.x), batch.y)

    Trainer(toy.build_model(), _config(max_epochs=1), loss_fn=loss_fn, evaluate_fn=toy.evaluate,
            make_batches=make_batches).fit()
    assert Batch.moved_to and all(device == torch.device("cpu") for device in Batch.moved_to)


def test_tied_weights_are_saved(toy, tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encode = nn.Linear(8, 8, bias=False)
            self.decode = nn.Linear(8, 8, bias=False)
            self.decode.weight = self.encode.weight
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(torch.relu(self.decode(self.encode(x))))

    torch.manual_seed(0)
    model = Tied()
    Trainer(model, _config(max_epochs=2), run_dir=tmp_path, **toy.trainer_kwargs()).fit()
    saved = load_file(str(tmp_path / "best.safetensors"))
    assert torch.equal(saved["encode.weight"], saved["decode.weight"])
    assert torch.equal(saved["encode.weight"], model.encode.weight.detach())


# ------------------------------------------------------------ determinism


def test_same_seed_gives_identical_weights_with_dropout(toy):
    config = _config(max_epochs=3, patience=10)
    first, second = toy.build_model(dropout=0.5), toy.build_model(dropout=0.5)
    Trainer(first, config, **toy.trainer_kwargs()).fit()
    torch.manual_seed(999)  # global state before fit must not matter: fit seeds it
    Trainer(second, config, **toy.trainer_kwargs()).fit()
    _assert_same_weights(first, second)

    third = toy.build_model(dropout=0.5)
    Trainer(third, replace(config, seed=4), **toy.trainer_kwargs()).fit()
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), third.state_dict().values()))


# ----------------------------------------------------------------- resume


def test_resume_equals_uninterrupted_run(toy, tmp_path, csv_rows):
    # val_loss keeps falling, so the best epoch is a late one, after the resume.
    config = _config(max_epochs=5, patience=10, lr_schedule="plateau", monitor="val_loss", mode="min")
    full_dir, split_dir = tmp_path / "full", tmp_path / "split"

    full = toy.build_model()
    full_result = Trainer(full, config, run_dir=full_dir, **toy.trainer_kwargs()).fit()

    Trainer(toy.build_model(), replace(config, max_epochs=2), run_dir=split_dir, **toy.trainer_kwargs()).fit()
    resumed = toy.build_model(seed=42)  # different init: everything must come from the checkpoint
    torch.manual_seed(12345)  # and the global random state from it too
    resumed_result = Trainer(resumed, config, run_dir=split_dir, **toy.trainer_kwargs()).fit(resume=True)

    _assert_same_weights(full, resumed)
    full_rows, resumed_rows = csv_rows(full_dir / "metrics.csv"), csv_rows(split_dir / "metrics.csv")
    assert [row["epoch"] for row in resumed_rows] == ["1", "2", "3", "4", "5"]
    assert _rows_without_timing(full_rows) == _rows_without_timing(resumed_rows)
    assert (resumed_result.best_epoch, resumed_result.best_score) == (full_result.best_epoch, full_result.best_score)
    assert resumed_result.epochs_run == 5
    assert resumed_result.best_epoch > 2
    _assert_same_last_epoch(full_dir, split_dir)
    for name in ("best.safetensors",):
        a, b = load_file(str(full_dir / name)), load_file(str(split_dir / name))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_keeps_plateau_schedule_and_early_stopping_state(toy, tmp_path, csv_rows, scripted):
    scores = [0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.9, 0.9]
    config = _config(max_epochs=8, patience=4, monitor="score", lr_schedule="plateau", lr=1e-2)
    full_dir, split_dir = tmp_path / "full", tmp_path / "split"

    full = toy.build_model()
    kwargs = toy.trainer_kwargs()
    full_result = Trainer(full, config, run_dir=full_dir, **(kwargs | {"evaluate_fn": scripted(scores)})).fit()
    # Epochs 3 and 4 do not improve -> the rate halves for epoch 5; 4 bad epochs -> stop after epoch 6.
    lrs = [row["lr"] for row in full_result.history]
    assert lrs[:4] == [1e-2] * 4 and lrs[4] == 5e-3
    assert (full_result.epochs_run, full_result.stopped_early, full_result.best_epoch) == (6, True, 2)

    Trainer(toy.build_model(), replace(config, max_epochs=4), run_dir=split_dir,
            **(kwargs | {"evaluate_fn": scripted(scores)})).fit()
    resumed = toy.build_model(seed=42)
    resumed_result = Trainer(resumed, config, run_dir=split_dir,
                             **(kwargs | {"evaluate_fn": scripted(scores, start=4)})).fit(resume=True)

    assert (resumed_result.epochs_run, resumed_result.stopped_early, resumed_result.best_epoch) == (6, True, 2)
    assert [row["lr"] for row in resumed_result.history] == lrs
    assert _rows_without_timing(csv_rows(full_dir / "metrics.csv")) == \
        _rows_without_timing(csv_rows(split_dir / "metrics.csv"))
    _assert_same_weights(full, resumed)
    _assert_same_last_epoch(full_dir, split_dir)


def test_resume_of_an_exhausted_run_trains_no_further(toy, tmp_path, scripted):
    config = _config(max_epochs=4, patience=2, monitor="score")
    kwargs = toy.trainer_kwargs()
    Trainer(toy.build_model(), config, run_dir=tmp_path, **(kwargs | {"evaluate_fn": scripted([0.5, 0.4, 0.3])})) \
        .fit()  # stops early after epoch 3

    def never(model):  # pragma: no cover - must not run
        raise AssertionError("evaluate_fn called after the run had stopped")

    model = toy.build_model(seed=5)
    result = Trainer(model, replace(config, max_epochs=10), run_dir=tmp_path,
                     **(kwargs | {"evaluate_fn": never})).fit(resume=True)
    assert (result.epochs_run, result.best_epoch, result.stopped_early) == (3, 1, True)
    saved = load_file(str(tmp_path / "best.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("schedule", ["linear", "cosine", "none"])
def test_resume_after_a_crash_mid_run(toy, tmp_path, schedule):
    config = _config(max_epochs=4, patience=10, lr_schedule=schedule, monitor="val_loss", mode="min",
                     warmup_steps=0 if schedule == "none" else 5)
    full_dir, crash_dir = tmp_path / "full", tmp_path / "crash"
    full = toy.build_model()
    full_result = Trainer(full, config, run_dir=full_dir, **toy.trainer_kwargs()).fit()

    calls = {"n": 0}

    def crashing_evaluate(model):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill during epoch 3")
        return toy.evaluate(model)

    with pytest.raises(KeyboardInterrupt):
        Trainer(toy.build_model(), config, run_dir=crash_dir,
                **(toy.trainer_kwargs() | {"evaluate_fn": crashing_evaluate})).fit()
    assert torch.load(crash_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2

    resumed = toy.build_model(seed=9)
    result = Trainer(resumed, config, run_dir=crash_dir, **toy.trainer_kwargs()).fit(resume=True)
    _assert_same_weights(full, resumed)
    _assert_same_last_epoch(full_dir, crash_dir)
    assert _rows_without_timing(result.history) == _rows_without_timing(full_result.history)
    if schedule != "none":
        assert full_result.history[-1]["lr"] < full_result.history[1]["lr"]


def test_checkpoint_loads_with_weights_only(toy, tmp_path):
    Trainer(toy.build_model(), _config(max_epochs=2), run_dir=tmp_path, **toy.trainer_kwargs()).fit()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    assert {"model", "optimizer", "scheduler", "best_score", "best_epoch", "best_metrics",
            "epochs_since_improvement", "history", "rng_state", "config"} <= set(checkpoint)
    assert checkpoint["config"]["monitor"] == "accuracy"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_resume_without_checkpoint_starts_fresh(toy, tmp_path, caplog):
    fresh = toy.build_model()
    Trainer(fresh, _config(max_epochs=2), **toy.trainer_kwargs()).fit()
    resumed = toy.build_model()
    with caplog.at_level(logging.INFO, logger="seq2labels.training.loop"):
        Trainer(resumed, _config(max_epochs=2), run_dir=tmp_path / "new", **toy.trainer_kwargs()).fit(resume=True)
    assert "starting fresh" in caplog.text
    _assert_same_weights(fresh, resumed)


def test_resume_needs_a_run_dir(toy):
    with pytest.raises(ValueError, match="run_dir"):
        Trainer(toy.build_model(), _config(), **toy.trainer_kwargs()).fit(resume=True)


def test_resume_refuses_a_different_schedule(toy, tmp_path):
    Trainer(toy.build_model(), _config(max_epochs=1), run_dir=tmp_path, **toy.trainer_kwargs()).fit()
    with pytest.raises(ValueError, match="lr_schedule"):
        Trainer(toy.build_model(), _config(max_epochs=2, lr_schedule="cosine"), run_dir=tmp_path,
                **toy.trainer_kwargs()).fit(resume=True)


# ----------------------------------------------------------------- errors


def test_nan_loss_raises_naming_epoch_and_step(toy):
    calls = {"n": 0}
    steps = toy.steps_per_epoch

    def loss_fn(model, batch):
        calls["n"] += 1
        loss = toy.loss_fn(model, batch)
        return loss * math.nan if calls["n"] == steps + 3 else loss

    with pytest.raises(FloatingPointError, match=r"epoch 2, step 3"):
        Trainer(toy.build_model(), _config(), **(toy.trainer_kwargs() | {"loss_fn": loss_fn})).fit()


def test_inf_loss_raises(toy):
    kwargs = toy.trainer_kwargs() | {"loss_fn": lambda model, batch: toy.loss_fn(model, batch) + math.inf}
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1"):
        Trainer(toy.build_model(), _config(), **kwargs).fit()


def test_missing_monitored_metric_is_reported(toy):
    with pytest.raises(KeyError, match="micro_f1"):
        Trainer(toy.build_model(), _config(monitor="micro_f1"), **toy.trainer_kwargs()).fit()


def test_per_step_schedule_needs_a_step_count(toy):
    kwargs = toy.trainer_kwargs() | {"steps_per_epoch": None, "make_batches": lambda e: iter(toy.make_batches(e))}
    with pytest.raises(ValueError, match="steps_per_epoch"):
        Trainer(toy.build_model(), _config(lr_schedule="linear"), **kwargs).fit()


@pytest.mark.parametrize(("field", "value"), [
    ("max_epochs", 0), ("max_epochs", True), ("patience", 0), ("lr", 0.0), ("lr", math.nan),
    ("weight_decay", -1.0), ("lr_schedule", "step"), ("warmup_steps", -1), ("grad_clip", 0.0),
    ("monitor", ""), ("mode", "up"), ("seed", -1), ("device", "no-such-device"), ("progress", "yes"),
])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainerConfig\.{field}\b"):
        TrainerConfig(**{field: value})


def test_default_config_is_valid():
    config = TrainerConfig()
    assert (config.max_epochs, config.patience, config.lr_schedule, config.monitor) == (20, 4, "plateau", "micro_f1")
