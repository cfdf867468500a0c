"""Mixed precision in the generic Trainer (``TrainerConfig.precision``), on the toy problem
of conftest.py.

bf16 is tested on the CPU. fp16 is refused on the CPU for users, but the loop's GradScaler
mechanics do not depend on the device, so they are also exercised here on a CPU config that
skips that check; the real fp16 path runs on CUDA when a GPU is present.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from seq2labels.errors import ConfigError
from seq2labels.training import Trainer, TrainerConfig
from seq2labels.training import loop as loop_module
from seq2labels.training.config import PRECISIONS

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _config(**overrides) -> TrainerConfig:
    base = TrainerConfig(max_epochs=6, patience=3, lr=1e-2, monitor="accuracy", progress=False, seed=3)
    return replace(base, **overrides)


def _cpu_fp16_config(**overrides) -> TrainerConfig:
    """fp16 on the CPU, past the validation that refuses it, to test the scaler code without a GPU."""
    config = _config(**overrides)
    object.__setattr__(config, "precision", "fp16")
    return config


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name


def _assert_same_checkpoints(dir_a, dir_b) -> None:
    """Last epoch's weights, optimizer state and loss scale (the best weights may hide them)."""
    a = torch.load(dir_a / "checkpoint.pt", weights_only=True)
    b = torch.load(dir_b / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"]
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for index, param_state in a["optimizer"]["state"].items():
        for key, value in param_state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][key]), (index, key)
    assert a["grad_scaler"] == b["grad_scaler"]


def _amplified_loss(toy, factor: float = 1e2):
    """The toy loss times ``factor``: still finite, but its gradients overflow float16 at the
    GradScaler's starting scale, so the scaler skips steps and backs off as on real models."""
    return lambda model, batch: toy.loss_fn(model, batch) * factor


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in history]


class RecordingLoss:
    """The toy loss, noting the autocast state and logits dtype the forward pass ran with,
    and whether autocast was still on when backward reached the loss."""

    def __init__(self, toy, device_type: str = "cpu"):
        self.toy = toy
        self.device_type = device_type
        self.forward: list[tuple[bool, torch.dtype, torch.dtype]] = []
        self.backward: list[bool] = []

    def __call__(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        logits = model(x)
        self.forward.append((torch.is_autocast_enabled(self.device_type),
                             torch.get_autocast_dtype(self.device_type), logits.dtype))
        loss = F.cross_entropy(logits, y)
        loss.register_hook(self._on_backward)
        return loss

    def _on_backward(self, grad: torch.Tensor) -> None:
        self.backward.append(torch.is_autocast_enabled(self.device_type))


# ------------------------------------------------------------------------ config


def test_default_precision_is_fp32():
    assert TrainerConfig().precision == "fp32"
    assert PRECISIONS == ("fp32", "bf16", "fp16")


@pytest.mark.parametrize("value", ["fp8", "float16", "", None, 16])
def test_unknown_precision_names_the_field_and_the_choices(value):
    with pytest.raises(ConfigError, match=r"TrainerConfig\.precision must be one of 'fp32', 'bf16', 'fp16'"):
        TrainerConfig(precision=value)


@pytest.mark.parametrize("device", ["cpu", "cpu:0"])
def test_fp16_on_cpu_is_refused_pointing_to_bf16(device):
    with pytest.raises(ConfigError, match=r"TrainerConfig\.precision .*use precision='bf16' on CPU.*got 'fp16'"):
        TrainerConfig(precision="fp16", device=device)


def test_bf16_on_a_gpu_without_bf16_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args, **kwargs: "Old GPU")
    with pytest.raises(ConfigError, match=r"TrainerConfig\.precision .*'cuda:0'.*Old GPU.*bfloat16.*got 'bf16'"):
        TrainerConfig(precision="bf16", device="cuda:0")
    assert TrainerConfig(precision="fp16", device="cuda:0").precision == "fp16"


def test_gpu_precisions_are_not_checked_against_a_missing_gpu(monkeypatch):
    """Like a CUDA device string today: moving the model there fails later, clearly."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TrainerConfig(precision="bf16", device="cuda").precision == "bf16"
    assert TrainerConfig(precision="fp16", device="cuda").precision == "fp16"


def test_bf16_on_cpu_is_accepted():
    assert TrainerConfig(precision="bf16", device="cpu").to_dict()["precision"] == "bf16"


# ---------------------------------------------------------------------- autocast


def test_fp32_trains_without_autocast(toy):
    loss = RecordingLoss(toy)
    Trainer(toy.build_model(), _config(max_epochs=1), **(toy.trainer_kwargs() | {"loss_fn": loss})).fit()
    assert loss.forward and all(not enabled and logits == torch.float32 for enabled, _, logits in loss.forward)
    assert loss.backward == [False] * len(loss.forward)


def test_bf16_forward_runs_under_autocast_backward_outside_and_learns(toy):
    loss = RecordingLoss(toy)
    model = toy.build_model()
    result = Trainer(model, _config(max_epochs=8, precision="bf16"),
                     **(toy.trainer_kwargs() | {"loss_fn": loss})).fit()

    assert loss.forward and set(loss.forward) == {(True, torch.bfloat16, torch.bfloat16)}
    assert loss.backward == [False] * len(loss.forward)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast leaves the weights alone
    losses = [row["train_loss"] for row in result.history]
    assert all(type(value) is float and math.isfinite(value) for value in losses)
    assert losses[-1] < losses[0] / 2
    assert result.best_score >= 0.9
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks out of fit


def test_bf16_changes_the_numerics(toy):
    fp32, bf16 = toy.build_model(), toy.build_model()
    Trainer(fp32, _config(max_epochs=2), **toy.trainer_kwargs()).fit()
    Trainer(bf16, _config(max_epochs=2, precision="bf16"), **toy.trainer_kwargs()).fit()
    assert any(not torch.equal(a, b) for a, b in zip(fp32.state_dict().values(), bf16.state_dict().values()))


def test_low_precision_loss_is_logged_as_a_float32_value(toy):
    """A loss_fn may hand back a bfloat16 loss; the log gets its value as a plain float."""
    seen = []

    def bf16_loss(model, batch):
        loss = toy.loss_fn(model, batch).to(torch.bfloat16)
        seen.append(loss.float().item())
        return loss

    steps = toy.steps_per_epoch
    result = Trainer(toy.build_model(), _config(max_epochs=1, precision="bf16"),
                     **(toy.trainer_kwargs() | {"loss_fn": bf16_loss})).fit()
    assert type(result.history[0]["train_loss"]) is float
    assert result.history[0]["train_loss"] == pytest.approx(sum(seen[:steps]) / steps, rel=1e-12)


def test_bf16_non_finite_loss_still_raises(toy):
    kwargs = toy.trainer_kwargs() | {"loss_fn": lambda model, batch: toy.loss_fn(model, batch) * math.nan}
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1, step 1"):
        Trainer(toy.build_model(), _config(precision="bf16"), **kwargs).fit()


# ------------------------------------------------------------ bf16 determinism


def test_bf16_same_seed_gives_identical_weights(toy):
    config = _config(max_epochs=3, patience=10, precision="bf16")
    first, second = toy.build_model(dropout=0.5), toy.build_model(dropout=0.5)
    Trainer(first, config, **toy.trainer_kwargs()).fit()
    torch.manual_seed(999)
    Trainer(second, config, **toy.trainer_kwargs()).fit()
    _assert_same_weights(first, second)

    third = toy.build_model(dropout=0.5)
    Trainer(third, replace(config, seed=4), **toy.trainer_kwargs()).fit()
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), third.state_dict().values()))


def test_bf16_resume_equals_uninterrupted_run(toy, tmp_path):
    config = _config(max_epochs=5, patience=10, lr_schedule="plateau", monitor="val_loss", mode="min",
                     precision="bf16")
    full_dir, split_dir = tmp_path / "full", tmp_path / "split"
    full = toy.build_model()
    full_result = Trainer(full, config, run_dir=full_dir, **toy.trainer_kwargs()).fit()

    Trainer(toy.build_model(), replace(config, max_epochs=2), run_dir=split_dir, **toy.trainer_kwargs()).fit()
    resumed = toy.build_model(seed=42)
    torch.manual_seed(12345)
    resumed_result = Trainer(resumed, config, run_dir=split_dir, **toy.trainer_kwargs()).fit(resume=True)

    _assert_same_weights(full, resumed)
    _assert_same_checkpoints(full_dir, split_dir)
    assert _without_timing(resumed_result.history) == _without_timing(full_result.history)
    assert (resumed_result.best_epoch, resumed_result.best_score) == (full_result.best_epoch, full_result.best_score)
    a, b = load_file(str(full_dir / "best.safetensors")), load_file(str(split_dir / "best.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_resume_after_a_crash_mid_run(toy, tmp_path):
    config = _config(max_epochs=4, patience=10, lr_schedule="linear", warmup_steps=5, monitor="val_loss",
                     mode="min", precision="bf16")
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
    resumed = toy.build_model(seed=9)
    result = Trainer(resumed, config, run_dir=crash_dir, **toy.trainer_kwargs()).fit(resume=True)
    _assert_same_weights(full, resumed)
    _assert_same_checkpoints(full_dir, crash_dir)
    assert _without_timing(result.history) == _without_timing(full_result.history)


def test_checkpoint_records_precision_and_no_scaler_outside_fp16(toy, tmp_path):
    Trainer(toy.build_model(), _config(max_epochs=1, precision="bf16"), run_dir=tmp_path,
            **toy.trainer_kwargs()).fit()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["precision"] == "bf16"
    assert checkpoint["grad_scaler"] is None


# ------------------------------------------------------------ precision on resume


def test_precision_change_on_resume_is_allowed_with_a_warning(toy, tmp_path, caplog):
    Trainer(toy.build_model(), _config(max_epochs=2, patience=10), run_dir=tmp_path, **toy.trainer_kwargs()).fit()
    loss = RecordingLoss(toy)
    with caplog.at_level(logging.INFO, logger="seq2labels.training.loop"):
        result = Trainer(toy.build_model(), _config(max_epochs=3, patience=10, precision="bf16"), run_dir=tmp_path,
                         **(toy.trainer_kwargs() | {"loss_fn": loss})).fit(resume=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'bf16'" in message and "'fp32'" in message and "reproduce" in message for message in warnings)
    assert result.epochs_run == 3 and len(result.history) == 3
    assert set(loss.forward) == {(True, torch.bfloat16, torch.bfloat16)}  # the new precision is used


def test_resume_of_a_checkpoint_from_before_precision_existed_counts_it_as_fp32(toy, tmp_path, caplog):
    config = _config(max_epochs=3, patience=10)
    full = toy.build_model()
    Trainer(full, config, **toy.trainer_kwargs()).fit()

    Trainer(toy.build_model(), replace(config, max_epochs=2), run_dir=tmp_path, **toy.trainer_kwargs()).fit()
    path = tmp_path / "checkpoint.pt"
    old = torch.load(path, weights_only=True)
    del old["config"]["precision"], old["grad_scaler"]
    torch.save(old, path)

    resumed = toy.build_model(seed=42)
    with caplog.at_level(logging.INFO, logger="seq2labels.training.loop"):
        Trainer(resumed, config, run_dir=tmp_path, **toy.trainer_kwargs()).fit(resume=True)
    assert "precision" not in caplog.text
    _assert_same_weights(full, resumed)


# ------------------------------------------------- fp16 scaler mechanics on CPU


def test_fp16_scales_the_loss_and_keeps_its_scale_in_the_checkpoint(toy, tmp_path):
    loss = RecordingLoss(toy)
    model = toy.build_model()
    result = Trainer(model, _cpu_fp16_config(max_epochs=4, patience=10), run_dir=tmp_path,
                     **(toy.trainer_kwargs() | {"loss_fn": loss})).fit()

    assert set(loss.forward) == {(True, torch.float16, torch.float16)}
    assert loss.backward == [False] * len(loss.forward)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    scaler = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["grad_scaler"]
    assert scaler["scale"] == 2.0**16 and scaler["_growth_tracker"] == 4 * toy.steps_per_epoch  # no overflow
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0] / 2
    assert result.best_score >= 0.9

    Trainer(toy.build_model(), _cpu_fp16_config(max_epochs=1), run_dir=tmp_path / "amplified",
            **(toy.trainer_kwargs() | {"loss_fn": _amplified_loss(toy)})).fit()
    scaler = torch.load(tmp_path / "amplified" / "checkpoint.pt", weights_only=True)["grad_scaler"]
    assert scaler["scale"] < 2.0**16  # backed off after the overflows


def test_fp16_gradient_overflow_skips_the_step_instead_of_raising(toy, monkeypatch):
    """With grad_clip the overflow shows as a non-finite norm: an error in fp32/bf16, routine in fp16."""
    applied = []
    build_optimizer = loop_module.build_optimizer

    def counting_optimizer(params, config):
        # A fused optimizer is always called and skips an overflowed step itself, so count the
        # calls that changed the weights.
        optimizer = build_optimizer(params, config)
        step = optimizer.step
        weights = [p for group in optimizer.param_groups for p in group["params"]]

        def step_and_count(*args, **kwargs):
            before = [w.detach().clone() for w in weights]
            result = step(*args, **kwargs)
            if any(not torch.equal(b, w) for b, w in zip(before, weights)):
                applied.append(1)
            return result

        optimizer.step = step_and_count
        return optimizer

    monkeypatch.setattr(loop_module, "build_optimizer", counting_optimizer)

    trainer = Trainer(toy.build_model(), _cpu_fp16_config(max_epochs=2, patience=10, grad_clip=1.0),
                      **(toy.trainer_kwargs() | {"loss_fn": _amplified_loss(toy)}))
    trainer.fit()
    assert 0 < len(applied) < 2 * toy.steps_per_epoch  # some steps were skipped, the others applied
    assert trainer._scaler is not None and trainer._scaler.get_scale() < 2.0**16


def test_fp16_non_finite_loss_still_raises(toy):
    kwargs = toy.trainer_kwargs() | {"loss_fn": lambda model, batch: toy.loss_fn(model, batch) + math.inf}
    with pytest.raises(FloatingPointError, match=r"loss is inf at epoch 1, step 1"):
        Trainer(toy.build_model(), _cpu_fp16_config(), **kwargs).fit()


def test_fp16_resume_restores_the_loss_scale(toy, tmp_path, monkeypatch):
    config = _cpu_fp16_config(max_epochs=4, patience=10, monitor="val_loss", mode="min")
    kwargs = toy.trainer_kwargs() | {"loss_fn": _amplified_loss(toy)}
    full_dir, split_dir, fresh_dir = tmp_path / "full", tmp_path / "split", tmp_path / "fresh"
    full = toy.build_model()
    full_result = Trainer(full, config, run_dir=full_dir, **kwargs).fit()

    for run_dir in (split_dir, fresh_dir):
        Trainer(toy.build_model(), _cpu_fp16_config(max_epochs=2, patience=10, monitor="val_loss", mode="min"),
                run_dir=run_dir, **kwargs).fit()
    assert torch.load(split_dir / "checkpoint.pt", weights_only=True)["grad_scaler"]["scale"] < 2.0**16
    resumed = toy.build_model(seed=42)
    result = Trainer(resumed, config, run_dir=split_dir, **kwargs).fit(resume=True)
    _assert_same_weights(full, resumed)
    _assert_same_checkpoints(full_dir, split_dir)
    assert _without_timing(result.history) == _without_timing(full_result.history)

    # Control: restarting from the default scale overflows again and skips steps the
    # uninterrupted run took, so the weights differ and the check above has teeth.
    monkeypatch.setattr(Trainer, "_restore_scaler", lambda self, saved: None)
    Trainer(toy.build_model(seed=42), config, run_dir=fresh_dir, **kwargs).fit(resume=True)
    a = torch.load(full_dir / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(fresh_dir / "checkpoint.pt", weights_only=True)["model"]
    assert any(not torch.equal(a[name], b[name]) for name in a)


# ------------------------------------------------------------------------- CUDA


class _CudaToy:
    """The toy problem with validation on the GPU the model trains on."""

    def __init__(self, toy):
        self.toy = toy
        self.x_val, self.y_val = toy.x_val.cuda(), toy.y_val.cuda()

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        logits = model(self.x_val)
        return {"accuracy": (logits.argmax(dim=1) == self.y_val).float().mean().item(),
                "val_loss": F.cross_entropy(logits.float(), self.y_val).item()}

    def kwargs(self, **overrides) -> dict:
        return self.toy.trainer_kwargs() | {"evaluate_fn": self.evaluate} | overrides


@needs_cuda
def test_cuda_fp16_trains_with_grad_scaler_and_resumes_exactly(toy, tmp_path):
    cuda_toy = _CudaToy(toy)
    config = _config(max_epochs=4, patience=10, monitor="val_loss", mode="min", device="cuda", precision="fp16")
    loss = RecordingLoss(toy, device_type="cuda")
    full_dir, split_dir = tmp_path / "full", tmp_path / "split"
    full = toy.build_model()
    trainer = Trainer(full, config, run_dir=full_dir, **cuda_toy.kwargs(loss_fn=loss))
    full_result = trainer.fit()

    assert set(loss.forward) == {(True, torch.float16, torch.float16)}
    assert loss.backward == [False] * len(loss.forward)
    assert isinstance(trainer._scaler, torch.amp.GradScaler) and trainer._scaler.is_enabled()
    assert all(p.dtype == torch.float32 for p in full.parameters())
    losses = [row["train_loss"] for row in full_result.history]
    assert all(type(value) is float for value in losses) and losses[-1] < losses[0]
    assert torch.load(full_dir / "checkpoint.pt", weights_only=True)["grad_scaler"]["scale"] > 0

    Trainer(toy.build_model(), replace(config, max_epochs=2), run_dir=split_dir, **cuda_toy.kwargs()).fit()
    resumed = toy.build_model(seed=42)
    result = Trainer(resumed, config, run_dir=split_dir, **cuda_toy.kwargs()).fit(resume=True)
    _assert_same_weights(full, resumed)
    _assert_same_checkpoints(full_dir, split_dir)
    assert _without_timing(result.history) == _without_timing(full_result.history)


@needs_cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()), reason="needs bf16 on the GPU")
def test_cuda_bf16_trains_under_autocast_without_a_scaler(toy, tmp_path):
    cuda_toy = _CudaToy(toy)
    loss = RecordingLoss(toy, device_type="cuda")
    trainer = Trainer(toy.build_model(), _config(max_epochs=6, device="cuda", precision="bf16"), run_dir=tmp_path,
                      **cuda_toy.kwargs(loss_fn=loss))
    result = trainer.fit()
    assert set(loss.forward) == {(True, torch.bfloat16, torch.bfloat16)}
    assert trainer._scaler is None
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["grad_scaler"] is None
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
