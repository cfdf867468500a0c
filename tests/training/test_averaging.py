"""``TrainerConfig.ema_decay``: the moving average of the weights is what gets evaluated and kept,
training goes on from the raw weights, and a resumed run continues the same average."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from seq2labels.training import Trainer, TrainerConfig
from seq2labels.training.averaging import WeightAverage

DECAY = 0.9


def _config(**overrides) -> TrainerConfig:
    base = TrainerConfig(max_epochs=4, patience=10, lr=1e-2, lr_schedule="none", monitor="val_loss", mode="min",
                         progress=False, seed=3, ema_decay=DECAY)
    return replace(base, **overrides)


class Recorder:
    """The toy's evaluate_fn, also keeping the weights each epoch was evaluated with."""

    def __init__(self, toy):
        self.toy, self.seen = toy, []

    def __call__(self, model):
        self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return self.toy.evaluate(model)


def _average_by_hand(toy, config: TrainerConfig, steps_per_epoch: int) -> list[dict[str, torch.Tensor]]:
    """The EMA at the end of each epoch, computed by hand over a run without averaging (which
    follows the same raw trajectory: the average never feeds back into training)."""
    model = toy.build_model()
    averages, average, count = [], None, 0
    trainer = Trainer(model, replace(config, ema_decay=0.0), **toy.trainer_kwargs())
    original_step = trainer._optimizer_step

    def step_and_average(optimizer):
        nonlocal average, count
        original_step(optimizer)
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        average = weights if average is None else {k: DECAY * average[k] + (1 - DECAY) * weights[k]
                                                   for k in weights}
        count += 1
        if count % steps_per_epoch == 0:
            averages.append(average)

    trainer._optimizer_step = step_and_average
    trainer.fit()
    return averages


def test_each_epoch_is_evaluated_on_the_moving_average(toy):
    expected = _average_by_hand(toy, _config(), toy.steps_per_epoch)
    recorder = Recorder(toy)
    model = toy.build_model()
    result = Trainer(model, _config(), **(toy.trainer_kwargs() | {"evaluate_fn": recorder})).fit()
    assert len(recorder.seen) == len(expected) == result.epochs_run == 4
    for seen, average in zip(recorder.seen, expected):
        for name in average:
            torch.testing.assert_close(seen[name], average[name], rtol=1e-5, atol=1e-6)
    best = recorder.seen[result.best_epoch - 1]
    assert all(torch.equal(model.state_dict()[k], best[k]) for k in best)  # the model ends on the kept average


def test_averaging_leaves_the_raw_training_trajectory_alone(toy, tmp_path):
    plain, averaged = toy.build_model(), toy.build_model()
    Trainer(plain, _config(ema_decay=0.0), run_dir=tmp_path / "plain", **toy.trainer_kwargs()).fit()
    Trainer(averaged, _config(), run_dir=tmp_path / "ema", **toy.trainer_kwargs()).fit()
    raw_plain = torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=True)["model"]
    raw_ema = torch.load(tmp_path / "ema" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(raw_plain[k], raw_ema[k]) for k in raw_plain)  # last raw weights: identical
    assert any(not torch.equal(a, b) for a, b in zip(plain.state_dict().values(), averaged.state_dict().values()))


def test_kept_weights_file_holds_the_average(toy, tmp_path):
    model = toy.build_model()
    Trainer(model, _config(), run_dir=tmp_path, **toy.trainer_kwargs()).fit()
    saved = load_file(str(tmp_path / "best.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_resume_continues_the_average_bit_for_bit(toy, tmp_path, csv_rows):
    config = _config(max_epochs=5)
    full = toy.build_model()
    Trainer(full, config, run_dir=tmp_path / "full", **toy.trainer_kwargs()).fit()
    Trainer(toy.build_model(), replace(config, max_epochs=2), run_dir=tmp_path / "split", **toy.trainer_kwargs()).fit()
    resumed = toy.build_model(seed=42)
    Trainer(resumed, config, run_dir=tmp_path / "split", **toy.trainer_kwargs()).fit(resume=True)
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values()))
    strip = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv_rows(tmp_path / "full" / "metrics.csv")]
    assert strip == [{k: v for k, v in row.items() if k != "epoch_seconds"}
                     for row in csv_rows(tmp_path / "split" / "metrics.csv")]
    saved = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["weight_average"]
    assert saved["decay"] == DECAY and int(saved["average"]["n_averaged"]) == 5 * toy.steps_per_epoch


def test_resuming_a_run_without_an_average_starts_one(toy, tmp_path, caplog):
    Trainer(toy.build_model(), _config(ema_decay=0.0, max_epochs=1), run_dir=tmp_path, **toy.trainer_kwargs()).fit()
    with caplog.at_level("WARNING", logger="seq2labels.training.loop"):
        Trainer(toy.build_model(), _config(max_epochs=2), run_dir=tmp_path, **toy.trainer_kwargs()).fit(resume=True)
    assert "holds no weight average" in caplog.text
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["weight_average"]
    assert int(saved["average"]["n_averaged"]) == toy.steps_per_epoch


def test_swapped_in_restores_the_raw_weights_even_after_an_error(toy):
    model = toy.build_model()
    average = WeightAverage(model, 0.5)
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    with average.swapped_in(model):  # nothing averaged yet: the model is left as it is
        assert all(torch.equal(model.state_dict()[k], raw[k]) for k in raw)
    average.update(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    moved = {k: v.clone() for k, v in model.state_dict().items()}
    average.update(model)  # average = 0.5 * raw + 0.5 * (raw + 1) = raw + 0.5
    with pytest.raises(RuntimeError, match="inside"):
        with average.swapped_in(model):
            torch.testing.assert_close(next(model.parameters()), next(iter(raw.values())) + 0.5)
            raise RuntimeError("inside")
    assert all(torch.equal(model.state_dict()[k], moved[k]) for k in moved)


@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan"), True])
def test_invalid_decay_names_the_field(value):
    with pytest.raises(ValueError, match=r"TrainerConfig\.ema_decay"):
        TrainerConfig(ema_decay=value)
