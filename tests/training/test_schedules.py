"""Shape of the per-step learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

from seq2labels.training.config import TrainerConfig
from seq2labels.training.schedules import build_scheduler, schedule_factor


def test_linear_warms_up_then_decays_to_zero():
    factors = [schedule_factor("linear", step, 4, 12) for step in range(13)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[8] == 0.5 and factors[12] == 0.0
    assert all(a >= b for a, b in zip(factors[3:], factors[4:]))


def test_cosine_is_half_way_at_mid_decay_and_zero_at_the_end():
    assert schedule_factor("cosine", 0, 0, 10) == 1.0
    assert math.isclose(schedule_factor("cosine", 5, 0, 10), 0.5)
    assert math.isclose(schedule_factor("cosine", 10, 0, 10), 0.0, abs_tol=1e-12)


def test_scheduler_drives_the_optimizer_rate():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=0.1)
    scheduler = build_scheduler(optimizer, TrainerConfig(lr=0.1, lr_schedule="linear", max_epochs=2,
                                                         warmup_steps=2), steps_per_epoch=3)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.05, 0.1, 0.1, 0.075, 0.05, 0.025])
    assert optimizer.param_groups[0]["lr"] == 0.0  # decayed to 0 at the end of max_epochs


def test_constant_rate_has_no_scheduler():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    assert build_scheduler(optimizer, TrainerConfig(lr_schedule="none"), None) is None
