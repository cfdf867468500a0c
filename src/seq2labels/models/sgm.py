"""SGM: sequence generation model for multi-label classification (Yang et al., COLING 2018).

A bidirectional RNN encoder reads the tokens; an LSTM decoder emits one label per
step, attending over the encoder states at every step, until it emits EOS. A mask
added before the softmax makes every label already emitted impossible, in training
(teacher forcing) and in decoding alike. With ``global_embedding`` the decoder input
is a gated mix of the previous label's embedding and the probability-weighted
average of all label embeddings (SGM+GE), which softens exposure bias.

The class implements the ``StepModel`` protocol of :mod:`seq2labels.decoding`:
``start`` encodes a batch, ``step`` runs one decoder step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2labels.decoding.orderfree import pla_chooser
from seq2labels.decoding.search import teacher_forced_log_probs
from seq2labels.models.attention import AdditiveAttention, at_least_float32, per_hypothesis
from seq2labels.models.config import SGMConfig
from seq2labels.models.encoders import build_encoder
from seq2labels.models.layers import Dropout

BOS_ID = 1  # must equal seq2labels.data.labels; GE starts from a one-hot BOS distribution


class SGM(nn.Module):
    # ``step`` takes static tensors with one row per example and state with any whole number of
    # consecutive rows (hypotheses) per example; see seq2labels.decoding.search.StepModel.
    static_per_example = True

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        self.config = cfg
        self.encoder = build_encoder(cfg)
        mem = self.encoder.output_dim
        self.label_embedding = nn.Embedding(cfg.num_outputs, cfg.label_embedding_dim, padding_idx=0)
        self.init_h = nn.Linear(mem, cfg.decoder_hidden)
        self.init_c = nn.Linear(mem, cfg.decoder_hidden)
        self.cell = nn.LSTMCell(cfg.label_embedding_dim + mem, cfg.decoder_hidden)
        self.attention = AdditiveAttention(cfg.decoder_hidden, mem, cfg.decoder_hidden) if cfg.attention else None
        self.combine = nn.Linear(cfg.decoder_hidden + mem, cfg.decoder_hidden)
        self.output = nn.Linear(cfg.decoder_hidden, cfg.num_outputs)
        self.dropout = Dropout(cfg.dropout)
        if cfg.bag_of_words:
            self.bow_output = nn.Linear(cfg.embedding_dim, cfg.num_outputs, bias=False)
        if cfg.global_embedding:
            self.ge_gate_e = nn.Linear(cfg.label_embedding_dim, cfg.label_embedding_dim)
            self.ge_gate_avg = nn.Linear(cfg.label_embedding_dim, cfg.label_embedding_dim, bias=False)

    # ---- StepModel protocol -------------------------------------------------------
    def start(self, src: Tensor, src_lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        memory, mask, pooled = self.encoder(src, src_lengths)            # (batch, time, mem), (batch, time), (batch, mem)
        static = {"memory": memory, "mask": mask}
        if self.config.bag_of_words:
            static["bow_logits"] = self._bag_of_words_logits(src, mask)      # (batch, V)
        if self.attention is not None:
            static["keys"] = at_least_float32(self.attention.project_keys(memory))  # (batch, time, hidden)
        else:
            static["pooled"] = pooled
        batch = pooled.size(0)
        state = {
            "h": torch.tanh(self.init_h(pooled)),                        # (batch, dec)
            "c": torch.tanh(self.init_c(pooled)),                        # (batch, dec)
            "context": pooled,                                           # (batch, mem) input feeding
        }
        if self.config.global_embedding:
            probs = torch.zeros(batch, self.config.num_outputs, device=pooled.device)  # (batch, V)
            probs[:, BOS_ID] = 1.0
            state["probs"] = probs
        return static, state

    def step(self, prev_labels: Tensor, state: dict[str, Tensor], static: dict[str, Tensor],
             forbidden: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One decoder step; forbidden (N, V) bool gets -inf before the softmax."""
        x = self._decoder_input(prev_labels, state)                      # (N, label_emb)
        h, c = self.cell(torch.cat([x, state["context"]], dim=-1), (state["h"], state["c"]))  # (N, dec)
        rows = h.size(0)
        if self.attention is not None:
            context, weights = self.attention(h, static["keys"], static["memory"], static["mask"])
        else:
            context = per_hypothesis(static["pooled"], rows)             # (N, mem)
            mask = per_hypothesis(static["mask"], rows).float()          # (N, time)
            weights = mask / mask.sum(1, keepdim=True).clamp(min=1)      # (N, time) uniform evidence
        hidden = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))  # (N, dec)
        logits = self.output(self.dropout(hidden))                       # (N, V)
        if "bow_logits" in static:
            logits = logits + per_hypothesis(static["bow_logits"], rows)
        logits = at_least_float32(logits).masked_fill(forbidden, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)                    # (N, V)
        new_state = {"h": h, "c": c, "context": context}
        if self.config.global_embedding:
            new_state["probs"] = log_probs.exp()
        return log_probs, new_state, weights

    def _bag_of_words_logits(self, src: Tensor, mask: Tensor) -> Tensor:
        """A linear, fastText-like view of the whole text: word evidence that a long RNN
        read can blur (rare, decisive words) reaches every decoding step directly."""
        emb = self.encoder.embedding(src)                                # (batch, time, emb)
        mean = (emb * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # (batch, emb)
        return self.bow_output(self.dropout(mean))                       # (batch, V)

    def _decoder_input(self, prev_labels: Tensor, state: dict[str, Tensor]) -> Tensor:
        emb = self.label_embedding(prev_labels)                          # (N, label_emb)
        if not self.config.global_embedding:
            return emb
        avg = state["probs"] @ self.label_embedding.weight               # (N, label_emb)
        gate = torch.sigmoid(self.ge_gate_e(emb) + self.ge_gate_avg(avg))  # (N, label_emb)
        return (1.0 - gate) * emb + gate * avg

    # ---- training ------------------------------------------------------------------
    def forward(self, src: Tensor, src_lengths: Tensor, targets: Tensor, align: str = "none") -> Tensor:
        """Teacher forcing. targets (batch, steps): labels, EOS, PAD.

        Returns log-probabilities (batch, steps, V) under the same mask decoding uses:
        PAD, BOS and every gold label emitted at an earlier step are forbidden. ``align="pla"``
        feeds, at each step, the remaining gold label the model ranks highest instead of the next
        one of ``targets`` (order-free training; the loss recovers those targets with
        :func:`seq2labels.decoding.orderfree.pla_targets`).
        """
        if align == "none":
            return teacher_forced_log_probs(self, src, src_lengths, targets)  # (batch, steps, V)
        if align == "pla":
            choose = pla_chooser(targets, self.config.num_outputs)
            return teacher_forced_log_probs(self, src, src_lengths, targets, choose_next=choose)  # (batch, steps, V)
        raise ValueError(f"unknown alignment {align!r}; expected 'none' or 'pla'")

    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: everything at the trainer's rate, except an encoder that asks for its
        own rate (a fine-tuned transformer), which gets a group of its own. Read, model-agnostically,
        by seq2labels.training.schedules.trainable_parameters."""
        own = getattr(self.encoder, "parameter_groups", None)
        encoder_groups = own() if own is not None else []
        grouped = {id(p) for group in encoder_groups for p in group["params"]}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in grouped]
        return [{"params": rest}, *encoder_groups]
