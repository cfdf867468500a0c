"""Decoding label sequences from a step-wise SGM decoder: greedy and batched beam search."""

from seq2labels.decoding.search import (
    BOS_ID,
    EOS_ID,
    FIRST_LABEL_ID,
    PAD_ID,
    BeamState,
    DecodeOutput,
    StepModel,
    beam_decode,
    beam_step,
    decode,
    forbidden_labels,
    greedy_decode,
    teacher_forced_log_probs,
)

__all__ = [
    "BOS_ID", "EOS_ID", "FIRST_LABEL_ID", "PAD_ID", "BeamState", "DecodeOutput", "StepModel",
    "beam_decode", "beam_step", "decode", "forbidden_labels", "greedy_decode",
    "teacher_forced_log_probs",
]
