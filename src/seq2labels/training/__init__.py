"""Generic training: a resumable loop that knows nothing about any model."""

from seq2labels.training.config import TrainerConfig
from seq2labels.training.loop import Trainer, TrainResult
from seq2labels.training.seeding import capture_rng_state, restore_rng_state, seed_everything

__all__ = ["TrainResult", "Trainer", "TrainerConfig", "capture_rng_state", "restore_rng_state", "seed_everything"]
