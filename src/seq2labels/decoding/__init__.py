"""Decoding label sequences from any step model: greedy and batched beam search, the model-free
``beam_step``, teacher forcing, and the same search over ONNX Runtime (onnx_backend).

May import evaluation, data, utils and errors; never models (it sees them through ``StepModel``).
"""

from seq2labels.decoding.hypotheses import (
    BOS_ID,
    EOS_ID,
    FIRST_LABEL_ID,
    PAD_ID,
    BeamState,
    DecodeOutput,
    beam_step,
    forbidden_labels,
)
from seq2labels.decoding.search import beam_decode, decode, greedy_decode, teacher_forced_log_probs
from seq2labels.decoding.stepping import StepModel

__all__ = [
    "BOS_ID", "EOS_ID", "FIRST_LABEL_ID", "PAD_ID", "BeamState", "DecodeOutput", "StepModel",
    "beam_decode", "beam_step", "decode", "forbidden_labels", "greedy_decode",
    "teacher_forced_log_probs",
]
