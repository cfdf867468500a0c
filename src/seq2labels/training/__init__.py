"""Generic training: a resumable loop that knows nothing about any model (loop, config, artifacts,
schedules, seeding, distributed), plus the label-sequence losses, mixed precision and the allocator.

May import evaluation, data, utils and errors; never models (it takes a loss function and a model).
"""

from seq2labels.training.config import TrainerConfig
from seq2labels.training.loop import Trainer, TrainResult
from seq2labels.training.seeding import capture_rng_state, restore_rng_state, seed_everything

__all__ = ["TrainResult", "Trainer", "TrainerConfig", "capture_rng_state", "restore_rng_state", "seed_everything"]
