"""A generic, resumable training loop.

The loop knows nothing about any model: the caller supplies how to compute a loss for
a batch (``loss_fn``), how to score the model (``evaluate_fn``) and the batches of each
epoch (``make_batches``). The loop owns the rest: the optimizer and learning-rate
schedule, gradient clipping, mixed precision (``TrainerConfig.precision``), an optional
moving average of the weights (``TrainerConfig.ema_decay``), early stopping on a monitored
metric, keeping the best weights, a metrics log, and checkpoints
from which an interrupted run continues exactly as if it had never stopped (bit for bit
on CPU).

Epochs are numbered from 1; ``make_batches(epoch)`` gets that number. Derive any
shuffling from the seed and the epoch (not from global random state) so a resumed
run sees the same batches.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau
from tqdm import tqdm

from seq2labels.errors import ConfigError
from seq2labels.training import distributed
from seq2labels.training.artifacts import (
    BEST_WEIGHTS_NAME,
    CHECKPOINT_NAME,
    FIXED_COLUMNS,
    METRICS_NAME,
    detached_state_dict,
    load_best_weights,
    load_checkpoint,
    save_best_weights,
    save_checkpoint,
    write_metrics_csv,
)
from seq2labels.training.averaging import WeightAverage
from seq2labels.training.config import TrainerConfig
from seq2labels.training.precision import autocast
from seq2labels.training.results import TrainResult, _RunState, _worst_score
from seq2labels.training.schedules import (
    PER_STEP_SCHEDULES,
    Scheduler,
    build_optimizer,
    build_scheduler,
    trainable_parameters,
)
from seq2labels.training.seeding import capture_rng_state, restore_rng_state, seed_everything
from seq2labels.training.values import _format_value, _loss_value, _move_to_device, _plain_metric, _stderr_is_tty

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "Trainer", "TrainerConfig"]

LossFn = Callable[[nn.Module, Any], Tensor]
EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
MakeBatches = Callable[[int], Iterable[Any]]
OnBest = Callable[[nn.Module, dict], None]
OnEpochEnd = Callable[[dict], None]

# Config fields whose change on resume alters the per-step schedule's shape.
_SCHEDULE_SHAPE_FIELDS = ("max_epochs", "warmup_steps")
# Checkpoints written before TrainerConfig.precision existed trained in float32.
_DEFAULT_PRECISION = "fp32"


class Trainer:
    """Trains any ``nn.Module`` given a loss, an evaluation and a batch source.

    ``run_dir=None`` keeps everything in memory and writes nothing. ``steps_per_epoch``
    sizes the progress bar and is required by the ``linear`` and ``cosine`` schedules
    (unless each epoch's batches have a ``len``). ``on_best(model, metrics)`` runs each
    time the monitored metric improves, e.g. to save extra artefacts. ``on_epoch_end(row)``
    gets each epoch's metrics row (epoch, train_loss, lr, epoch_seconds and the evaluation's
    metrics, as in metrics.csv) before the checkpoint, e.g. to draw curves (rank 0 only).

    Under torchrun (see :mod:`seq2labels.training.distributed`) each rank passes its own
    share of the batches; training steps go through DistributedDataParallel, rank 0 alone
    evaluates, writes ``run_dir`` and calls ``on_best``, and its metrics are broadcast so
    every rank takes the same early-stopping and learning-rate decisions.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainerConfig,
        *,
        loss_fn: LossFn,
        evaluate_fn: EvaluateFn,
        make_batches: MakeBatches,
        run_dir: str | Path | None = None,
        steps_per_epoch: int | None = None,
        on_best: OnBest | None = None,
        on_epoch_end: OnEpochEnd | None = None,
    ) -> None:
        if not isinstance(config, TrainerConfig):
            raise TypeError(f"config must be a TrainerConfig, got {type(config).__name__}")
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int)
                                            or steps_per_epoch < 1):
            raise ValueError(f"steps_per_epoch must be None or an int >= 1, got {steps_per_epoch!r}")
        self.model = model
        self.config = config
        self.loss_fn = loss_fn
        self.evaluate_fn = evaluate_fn
        self.make_batches = make_batches
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.steps_per_epoch = steps_per_epoch
        self.on_best = on_best
        self.on_epoch_end = on_epoch_end
        self.device = torch.device(config.device)
        self._best_weights: dict[str, Tensor] | None = None
        self._warned_step_count = False
        self._train_model: nn.Module = model  # the DDP wrapper in a multi-process run
        self._scaler: torch.amp.GradScaler | None = None  # fp16 only, rebuilt by each fit
        self._average: WeightAverage | None = None  # ema_decay > 0 only, rebuilt by each fit

    @property
    def _writes(self) -> bool:
        """Only rank 0 writes the run folder (in a single process: whenever there is one)."""
        return self.run_dir is not None and distributed.is_main_process()

    # ------------------------------------------------------------------ fit

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``max_epochs`` or early stopping; the model ends with the best weights.

        With ``resume=True`` and a ``checkpoint.pt`` in ``run_dir``, training continues
        from the epoch after the checkpoint; without a checkpoint it starts fresh.
        """
        started = time.perf_counter()
        if resume and self.run_dir is None:
            raise ValueError("resume=True needs a run_dir to find checkpoint.pt in")
        if self._writes:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.model.to(self.device)
        self._train_model = distributed.wrap_model(self.model, self.device)
        self._best_weights = None
        optimizer = build_optimizer(trainable_parameters(self.model), self.config)
        scheduler = build_scheduler(optimizer, self.config, self._steps_for_schedule())
        self._scaler = self._build_scaler()
        self._average = WeightAverage(self.model, self.config.ema_decay) if self.config.ema_decay else None

        checkpoint = self._find_checkpoint() if resume else None
        if checkpoint is None:
            state = _RunState(best_score=_worst_score(self.config.mode))
            seed_everything(distributed.rank_seed(self.config.seed))
        else:
            state = self._restore(checkpoint, optimizer, scheduler)
            # Last, so nothing between here and the next epoch draws random numbers.
            restore_rng_state(distributed.rng_state_for_rank(checkpoint))

        self._train_epochs(state, optimizer, scheduler)
        self._load_best_into_model(state)
        return self._result(state, time.perf_counter() - started)

    def _train_epochs(self, state: _RunState, optimizer: Optimizer, scheduler: Scheduler | None) -> None:
        """The epoch loop; the patience check comes first so a resumed, already
        exhausted run stops exactly where the uninterrupted one did."""
        for epoch in range(state.epoch + 1, self.config.max_epochs + 1):
            if state.epochs_since_improvement >= self.config.patience:
                state.stopped_early = True
                logger.info("early stop: %s has not improved for %d epochs (best %s at epoch %d)",
                            self.config.monitor, state.epochs_since_improvement,
                            _format_value(state.best_score), state.best_epoch)
                return
            self._run_epoch(epoch, state, optimizer, scheduler)

    def _run_epoch(self, epoch: int, state: _RunState, optimizer: Optimizer, scheduler: Scheduler | None) -> None:
        """Train one epoch, evaluate, keep the best, log, and checkpoint."""
        epoch_started = time.perf_counter()
        train_loss, lr = self._train_one_epoch(epoch, optimizer, scheduler)
        train_loss = distributed.mean_across_ranks(train_loss)
        with self._evaluated_weights():  # the average, when there is one: scored, and kept if best
            metrics = distributed.run_on_main(self._evaluate)
            score = self._monitored_score(metrics)
            improved = self._update_best(state, epoch, score, metrics)
        if isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step(score)
        row = {"epoch": epoch, "train_loss": train_loss, "lr": lr,
               "epoch_seconds": time.perf_counter() - epoch_started, **metrics}
        state.history.append(row)
        state.epoch = epoch
        if self._writes:
            write_metrics_csv(self.run_dir / METRICS_NAME, state.history)
        self._log_epoch(row, state, improved)
        if self.on_epoch_end is not None and distributed.is_main_process():
            self.on_epoch_end(dict(row))
        if self.run_dir is not None:  # every rank: the random states are gathered from all of them
            self._save_checkpoint(state, optimizer, scheduler)

    # ------------------------------------------------------------- training

    def _train_one_epoch(self, epoch: int, optimizer: Optimizer, scheduler: Scheduler | None) -> tuple[float, float]:
        """Run every batch of the epoch; returns the mean loss and the last learning rate used."""
        self.model.train()
        per_step = scheduler if self.config.lr_schedule in PER_STEP_SCHEDULES else None
        bar = tqdm(self.make_batches(epoch), total=self.steps_per_epoch, desc=f"epoch {epoch}",
                   unit="batch", leave=False,
                   disable=not (self.config.progress and _stderr_is_tty() and distributed.is_main_process()))
        total, steps, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
        try:
            for steps, batch in enumerate(bar, start=1):
                lr = optimizer.param_groups[0]["lr"]
                total += self._train_step(batch, optimizer, epoch, steps)
                if per_step is not None:
                    per_step.step()
                bar.set_postfix(loss=f"{total / steps:.4f}", refresh=False)
        finally:
            bar.close()
        if steps == 0:
            raise ValueError(f"make_batches({epoch}) produced no batches")
        self._check_step_count(epoch, steps)
        return total / steps, lr

    def _train_step(self, batch: Any, optimizer: Optimizer, epoch: int, step: int) -> float:
        """One optimizer step: loss (autocast in bf16/fp16), finiteness check, backward
        (outside autocast, as PyTorch recommends), clipping, update."""
        batch = _move_to_device(batch, self.device)
        optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss_fn(self._train_model, batch)
        value = _loss_value(loss, epoch, step)
        if self._scaler is None:
            loss.backward()
        else:
            self._scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self._clip_gradients(optimizer, epoch, step)
        self._optimizer_step(optimizer)
        if self._average is not None:
            self._average.update(self.model)
        return value

    def _autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for bf16/fp16; fp32 gets no context at all, so it stays bit for bit as it was."""
        return autocast(self.device, self.config.precision)

    def _build_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none."""
        if self.config.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)

    def _optimizer_step(self, optimizer: Optimizer) -> None:
        """Plain step, or the scaler's: it skips a step whose gradients overflowed and lowers its scale."""
        if self._scaler is None:
            optimizer.step()
            return
        self._scaler.step(optimizer)
        self._scaler.update()

    def _clip_gradients(self, optimizer: Optimizer, epoch: int, step: int) -> None:
        """Clip the true (unscaled) gradients, and refuse to apply gradients that overflowed
        despite a finite loss; in fp16 such a step is routine and the scaler skips it."""
        if self._scaler is not None:
            self._scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if not torch.isfinite(norm):
            if self._scaler is not None:
                logger.debug("gradient overflow at epoch %d, step %d; fp16 step skipped", epoch, step)
                return
            raise FloatingPointError(f"gradient norm is {norm.item()} at epoch {epoch}, step {step} (1-based)")

    def _check_step_count(self, epoch: int, steps: int) -> None:
        """A wrong steps_per_epoch silently distorts per-step schedules; say so once."""
        if self.steps_per_epoch is not None and steps != self.steps_per_epoch and not self._warned_step_count:
            self._warned_step_count = True
            logger.warning("epoch %d had %d batches but steps_per_epoch=%d", epoch, steps, self.steps_per_epoch)

    def _steps_for_schedule(self) -> int | None:
        """Steps per epoch for schedules that need them: given, or the length of epoch 1's batches."""
        if self.config.lr_schedule not in PER_STEP_SCHEDULES or self.steps_per_epoch is not None:
            return self.steps_per_epoch
        batches = self.make_batches(1)
        if not hasattr(batches, "__len__"):
            raise ValueError(f"lr_schedule={self.config.lr_schedule!r} needs steps_per_epoch "
                             "(make_batches returns an iterable without len)")
        return len(batches)  # type: ignore[arg-type]

    # ----------------------------------------------------------- evaluation

    def _evaluated_weights(self) -> contextlib.AbstractContextManager:
        """The weights an epoch is judged by: the moving average with ``ema_decay``, else the model's own."""
        return contextlib.nullcontext() if self._average is None else self._average.swapped_in(self.model)

    def _evaluate(self) -> dict[str, Any]:
        """Run evaluate_fn in eval mode without autograd; return plain-scalar metrics."""
        self.model.eval()
        with torch.no_grad():
            raw = self.evaluate_fn(self.model)
        if not isinstance(raw, Mapping):
            raise TypeError(f"evaluate_fn must return a dict of metrics, got {type(raw).__name__}")
        metrics = {str(name): _plain_metric(str(name), value) for name, value in raw.items()}
        clashes = sorted(set(metrics) & set(FIXED_COLUMNS))
        if clashes:
            raise ValueError(f"evaluate_fn returned reserved metric names {clashes}; rename them")
        return metrics

    def _monitored_score(self, metrics: Mapping[str, Any]) -> float:
        if self.config.monitor not in metrics:
            raise KeyError(f"evaluate_fn returned no {self.config.monitor!r} (TrainerConfig.monitor); "
                           f"it returned {sorted(metrics)}")
        try:
            return float(metrics[self.config.monitor])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"monitored metric {self.config.monitor!r} is not a number: "
                            f"{metrics[self.config.monitor]!r}") from exc

    def _is_improvement(self, score: float, best: float) -> bool:
        if math.isnan(score):
            logger.warning("monitored metric %r is NaN; counting it as no improvement", self.config.monitor)
            return False
        return score > best if self.config.mode == "max" else score < best

    def _update_best(self, state: _RunState, epoch: int, score: float, metrics: dict[str, Any]) -> bool:
        """Track patience and, on improvement, keep (and write) the new best weights."""
        if not self._is_improvement(score, state.best_score):
            state.epochs_since_improvement += 1
            return False
        state.best_score, state.best_epoch, state.best_metrics = score, epoch, dict(metrics)
        state.epochs_since_improvement = 0
        self._best_weights = detached_state_dict(self.model)
        if self._writes:
            save_best_weights(self.run_dir / BEST_WEIGHTS_NAME, self._best_weights, epoch, self.config.monitor, score)
        if self.on_best is not None and distributed.is_main_process():
            self.on_best(self.model, dict(metrics))
        return True

    def _log_epoch(self, row: Mapping[str, Any], state: _RunState, improved: bool) -> None:
        fields = " ".join(f"{key}={_format_value(value)}" for key, value in row.items()
                          if key not in ("epoch", "epoch_seconds"))
        marker = " *" if improved else ""
        logger.info("epoch %d/%d %s (%.1fs) best %s=%s@%d%s", row["epoch"], self.config.max_epochs, fields,
                    row["epoch_seconds"], self.config.monitor, _format_value(state.best_score),
                    state.best_epoch, marker)

    # ------------------------------------------------------ checkpointing

    def _save_checkpoint(self, state: _RunState, optimizer: Optimizer, scheduler: Scheduler | None) -> None:
        """Everything a resume needs; the random state is captured as the very last
        thing of the epoch, exactly where the next epoch will pick it up; a multi-process
        run keeps every rank's (gathered here, so every rank must call this)."""
        assert self.run_dir is not None
        rng_states = distributed.all_gather_object(capture_rng_state())
        if not self._writes:
            return
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, {
            "epoch": state.epoch,
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "best_score": state.best_score,
            "best_epoch": state.best_epoch,
            "best_metrics": state.best_metrics,
            "epochs_since_improvement": state.epochs_since_improvement,
            "history": state.history,
            "rng_state": rng_states[0],
            **({"rng_state_by_rank": rng_states} if len(rng_states) > 1 else {}),
            "config": self.config.to_dict(),
            "grad_scaler": self._scaler.state_dict() if self._scaler is not None else None,
            "weight_average": self._average.state_dict() if self._average is not None else None,
        })

    def _find_checkpoint(self) -> dict[str, Any] | None:
        assert self.run_dir is not None
        path = self.run_dir / CHECKPOINT_NAME
        if not path.is_file():
            logger.info("resume requested but %s does not exist; starting fresh", path)
            return None
        checkpoint = load_checkpoint(path)
        logger.info("resuming from %s after epoch %d", path, checkpoint["epoch"])
        return checkpoint

    def _restore(self, checkpoint: dict[str, Any], optimizer: Optimizer, scheduler: Scheduler | None) -> _RunState:
        """Load model, optimizer, schedule and loop state from a checkpoint."""
        self._check_config_changes(checkpoint["config"])
        self.model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        self._restore_scaler(checkpoint.get("grad_scaler"))
        self._restore_average(checkpoint.get("weight_average"))
        state = _RunState(
            best_score=float(checkpoint["best_score"]),
            epoch=int(checkpoint["epoch"]),
            best_epoch=int(checkpoint["best_epoch"]),
            best_metrics=dict(checkpoint["best_metrics"]),
            epochs_since_improvement=int(checkpoint["epochs_since_improvement"]),
            history=[dict(row) for row in checkpoint["history"]],
        )
        if state.best_epoch > 0:
            assert self.run_dir is not None
            self._best_weights = load_best_weights(self.run_dir / BEST_WEIGHTS_NAME, state.best_epoch)
        return state

    def _restore_scaler(self, saved: Mapping[str, Any] | None) -> None:
        """Continue with the interrupted run's loss scale (the next steps depend on it); a run
        that was not fp16 before has none, and this one starts from the default scale."""
        if self._scaler is not None and saved:
            self._scaler.load_state_dict(dict(saved))

    def _restore_average(self, saved: Mapping[str, Any] | None) -> None:
        """Continue the interrupted run's average; a run that kept none starts one from the current weights."""
        if self._average is None:
            return
        if saved:
            self._average.load_state_dict(saved)
        else:
            logger.warning("the checkpoint holds no weight average (it was trained with ema_decay=0); "
                           "averaging starts from its last weights")

    def _check_config_changes(self, saved: Mapping[str, Any]) -> None:
        """Refuse changes a resume cannot honour; report the others.

        A precision change is allowed (weights and optimizer state are float32 in every
        precision, so e.g. a run that overflows in fp16 can go on in bf16), with a warning
        that the run no longer reproduces an uninterrupted one.
        """
        saved = {"precision": _DEFAULT_PRECISION, "ema_decay": 0.0, **saved}
        current = self.config.to_dict()
        changed = {key: (saved.get(key), value) for key, value in current.items() if saved.get(key) != value}
        if not changed:
            return
        if "lr_schedule" in changed:
            old, new = changed["lr_schedule"]
            raise ConfigError(f"cannot resume: TrainerConfig.lr_schedule changed from {old!r} to {new!r}")
        logger.info("resuming with changed settings: %s",
                    ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changed.items()))
        if self.config.lr_schedule in PER_STEP_SCHEDULES and set(changed) & set(_SCHEDULE_SHAPE_FIELDS):
            logger.warning("the %s schedule is recomputed for the new settings; the learning rate will "
                           "differ from the interrupted run's plan", self.config.lr_schedule)
        if "precision" in changed:
            old, new = changed["precision"]
            logger.warning("resuming in precision %r after training in %r: the numerics change, so the run "
                           "will not reproduce an uninterrupted %r one", new, old, old)

    # --------------------------------------------------------------- result

    def _load_best_into_model(self, state: _RunState) -> None:
        if self._best_weights is None:
            logger.warning("no epoch improved %r; keeping the last weights", self.config.monitor)
            return
        self.model.load_state_dict(self._best_weights)

    def _result(self, state: _RunState, seconds: float) -> TrainResult:
        found = state.best_epoch > 0
        return TrainResult(
            best_epoch=state.best_epoch,
            best_score=state.best_score if found else math.nan,
            best_metrics=dict(state.best_metrics),
            history=[dict(row) for row in state.history],
            stopped_early=state.stopped_early,
            seconds=seconds,
            epochs_run=state.epoch,
        )
