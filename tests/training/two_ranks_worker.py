"""One rank of tests/training/test_distributed.py's two-process run, as its own interpreter.

Usage: python two_ranks_worker.py RANK PORT RUN_DIR OUT_JSON. Joins a gloo group of two, trains
the toy MLP through the generic Trainer and writes what this rank saw (evaluations, shards,
writes, final weights) to OUT_JSON. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_toy  # noqa: E402  (the toy data, built the same way as the fixture)

from seq2labels.training import Trainer, TrainerConfig, distributed  # noqa: E402
from seq2labels.training import loop as loop_module  # noqa: E402

RANK0_SCORES = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]             # stops after epoch 4 (patience 2)
RANK1_SCORES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]             # would never stop


def _rank_main(rank: int, port: int, run_dir: Path, toy, out: Path) -> None:
    """One rank: join the group, train the toy MLP, write what it saw as JSON."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    writes: list[str] = []
    for name in ("write_metrics_csv", "save_best_weights", "save_checkpoint"):
        original = getattr(loop_module, name)
        setattr(loop_module, name, lambda *a, _name=name, _f=original: (writes.append(_name), _f(*a))[1])
    evaluated, shards, best_calls = [], [], []
    scores = RANK0_SCORES if rank == 0 else RANK1_SCORES

    def evaluate(model):
        evaluated.append(len(evaluated) + 1)
        return {"score": scores[len(evaluated) - 1]}

    def make_batches(epoch):
        batches = toy.make_batches(epoch)
        mine = distributed.shard_batches(list(range(len(batches))))
        shards.append(mine)
        return [batches[i] for i in mine]

    with distributed.session("cpu"):
        model = toy.build_model(seed=10 + rank)                       # DDP must start both from rank 0's
        config = TrainerConfig(max_epochs=8, patience=2, lr=1e-2, monitor="score", progress=False, seed=3)
        trainer = Trainer(model, config, loss_fn=toy.loss_fn, evaluate_fn=evaluate, make_batches=make_batches,
                          run_dir=run_dir, steps_per_epoch=3, on_best=lambda m, metrics: best_calls.append(1))
        result = trainer.fit()
        last = {k: v.tolist() for k, v in trainer.model.state_dict().items()}
    out.write_text(json.dumps({"epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
                               "best_epoch": result.best_epoch, "evaluated": len(evaluated), "shards": shards,
                               "writes": writes, "on_best": len(best_calls), "weights": last,
                               "losses": [row["train_loss"] for row in result.history]}))


if __name__ == "__main__":
    rank, port, run_dir, out = sys.argv[1:5]
    _rank_main(int(rank), int(port), Path(run_dir), make_toy(), Path(out))
