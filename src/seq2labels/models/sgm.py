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

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from seq2labels.decoding.search import teacher_forced_log_probs
from seq2labels.models.layers import Dropout

BOS_ID = 1  # must equal seq2labels.data.labels; GE starts from a one-hot BOS distribution


@dataclass(frozen=True)
class SGMConfig:
    vocab_size: int
    num_outputs: int                 # label vocabulary size incl. PAD, BOS, EOS
    embedding_dim: int = 128
    encoder_hidden: int = 256        # per direction
    encoder_layers: int = 1
    rnn_type: str = "lstm"           # "lstm" | "gru"
    bidirectional: bool = True
    self_attention: bool = False     # a self-attention layer over encoder states
    self_attention_heads: int = 4
    attention: bool = True           # contextual attention; False = mean-pooled encoder states
    label_embedding_dim: int = 128
    decoder_hidden: int = 256
    global_embedding: bool = False   # SGM+GE
    bag_of_words: bool = False       # add a per-label bias from the mean word embedding at every step
    mask_repeats: bool = True        # masked softmax over emitted labels; False = the "no mask" ablation
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.rnn_type not in ("lstm", "gru"):
            raise ValueError(f"rnn_type must be 'lstm' or 'gru', got {self.rnn_type!r}")
        for name in ("vocab_size", "embedding_dim", "encoder_hidden", "encoder_layers",
                     "label_embedding_dim", "decoder_hidden", "self_attention_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_outputs < 4:
            raise ValueError("num_outputs must count PAD, BOS, EOS and at least one label")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.self_attention and self.memory_dim % self.self_attention_heads:
            raise ValueError(f"self_attention_heads ({self.self_attention_heads}) must divide "
                             f"the encoder output size ({self.memory_dim})")

    @property
    def memory_dim(self) -> int:
        return self.encoder_hidden * (2 if self.bidirectional else 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SGMConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SGM config keys: {', '.join(unknown)}")
        return cls(**data)


def reversal_rows(lengths: Tensor, time: int) -> Tensor:
    """Row indices into a (batch * time, ...) view that reverse each sequence's first ``length``
    steps and leave its padding where it is (see :func:`reverse_within_length`)."""
    batch = lengths.size(0)
    steps = torch.arange(time, device=lengths.device)[None, :]           # (1, time)
    last = (lengths - 1).clamp(min=0)[:, None]                            # (batch, 1)
    index = torch.where(steps < lengths[:, None], last - steps, steps)   # (batch, time)
    offsets = torch.arange(batch, device=lengths.device)[:, None] * time  # (batch, 1)
    return (index + offsets).reshape(-1)                                  # (batch * time,)


def reverse_rows(x: Tensor, rows: Tensor) -> Tensor:
    """x (batch, time, dim) reordered by :func:`reversal_rows`: one ``index_select`` of whole
    feature rows, several times faster than a ``gather`` with an expanded index (forward and
    backward)."""
    batch, time, _ = x.shape
    return x.reshape(batch * time, -1).index_select(0, rows).view(batch, time, -1)  # (batch, time, dim)


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence's first ``length`` steps, leaving padding where it is.

    Applying it twice is the identity; it lets a plain (unpacked) RNN read each text
    backwards starting from its last real token.
    """
    return reverse_rows(x, reversal_rows(lengths, x.size(1)))          # (batch, time, dim)


class Encoder(nn.Module):
    """Embeddings -> (bi)RNN -> optional self-attention.

    Each direction is a plain unidirectional RNN over the padded batch; the backward
    one reads every text reversed within its own length. This is exact (padding sits
    after the last real token, so it never reaches a real position) and on CPU it is
    several times faster than packed sequences of uneven lengths, which fall off
    oneDNN's fast path; length-bucketed batches keep the padding small.
    """

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=0)
        rnn = nn.LSTM if cfg.rnn_type == "lstm" else nn.GRU
        directions = 2 if cfg.bidirectional else 1
        self.layers = nn.ModuleList()
        for layer in range(cfg.encoder_layers):
            in_dim = cfg.embedding_dim if layer == 0 else cfg.encoder_hidden * directions
            self.layers.append(nn.ModuleList(rnn(in_dim, cfg.encoder_hidden, batch_first=True)
                                             for _ in range(directions)))
        self.dropout = Dropout(cfg.dropout)
        self.self_attn = None
        if cfg.self_attention:
            self.self_attn = nn.MultiheadAttention(cfg.memory_dim, cfg.self_attention_heads,
                                                   dropout=cfg.dropout, batch_first=True)
            self.self_attn_norm = nn.LayerNorm(cfg.memory_dim)

    @property
    def memory_zero_on_padding(self) -> bool:
        """Whether ``forward``'s memory is exactly zero on padding (lets pooling skip a mask)."""
        return self.self_attn is None

    def forward(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (memory (batch, time, memory_dim), mask (batch, time) True on real tokens)."""
        time = src.size(1)
        mask = torch.arange(time, device=src.device)[None, :] < lengths[:, None]  # (batch, time)
        x = self.dropout(self.embedding(src))                            # (batch, time, emb)
        rows = reversal_rows(lengths, time) if len(self.layers[0]) == 2 else None  # (batch * time,)
        for i, directions in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            outputs = [directions[0](x)[0]]                              # (batch, time, hidden)
            if rows is not None:
                backward, _ = directions[1](reverse_rows(x, rows))       # (batch, time, hidden)
                outputs.append(reverse_rows(backward, rows))             # (batch, time, hidden)
            x = torch.cat(outputs, dim=-1)                               # (batch, time, mem)
        memory = self.dropout(x.mul_(mask.unsqueeze(-1)))                # (batch, time, mem) zero on padding; x is cat's own
        if self.self_attn is not None:
            attended, _ = self.self_attn(memory, memory, memory, key_padding_mask=~mask,
                                         need_weights=False)             # (batch, time, mem)
            memory = self.self_attn_norm(memory + attended)
        return memory, mask


# At inference the energy tensor (examples, group, time, hidden) is built, squashed and projected
# a slice of examples at a time, each slice about this many floats (1 MiB): it stays in the CPU
# cache instead of making three trips through memory, and no allocation is large enough for
# malloc to hand it back to the kernel. One slice when the whole tensor is smaller.
ENERGY_CHUNK_ELEMENTS = 1 << 18


class AdditiveAttention(nn.Module):
    """Bahdanau-style attention: score = v^T tanh(W_q q + W_k k), as in SGM."""

    def __init__(self, query_dim: int, key_dim: int, hidden: int):
        super().__init__()
        self.query = nn.Linear(query_dim, hidden, bias=False)
        self.key = nn.Linear(key_dim, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)

    def _scores(self, keys: Tensor, q: Tensor) -> Tensor:
        """v^T tanh(k + q) for a slice of the examples: keys (m, time, hidden), q (m, group, hidden)."""
        energy = (keys[:, None] + q[:, :, None]).tanh_()                 # (m, group, time, hidden)
        with torch.autocast(energy.device.type, enabled=False):
            return self.v(energy).squeeze(-1)                            # (m, group, time)

    def project_keys(self, memory: Tensor) -> Tensor:
        """Computed once per batch: the keys do not change across decoder steps."""
        return self.key(memory)                                          # (batch, time, hidden)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """query (N, q) with N = n * group: ``group`` consecutive queries (an example's beam
        hypotheses) attend over the same keys, memory and mask (n rows each), so beam search
        needs no per-hypothesis copy of the encoder outputs.

        The energy (the decoder's largest tensor) stays in float32 even under bf16 autocast:
        on CPUs bf16 tanh is several times slower than float32 tanh, and the scores keep
        their precision."""
        n, time, hidden = keys.shape
        q = at_least_float32(self.query(query)).view(n, -1, hidden)      # (n, group, hidden)
        keys = at_least_float32(keys)                                    # (n, time, hidden)
        step = max(1, ENERGY_CHUNK_ELEMENTS // (q.size(1) * time * hidden))
        # One piece when it is small, when an export traces the graph (any n must work), and under
        # autograd: the backward of every slice would write a zero-filled gradient of all the keys.
        if n <= step or torch.jit.is_tracing() or torch.is_grad_enabled():
            scores = self._scores(keys, q)                               # (n, group, time)
        else:
            scores = torch.cat([self._scores(keys[i:i + step], q[i:i + step]) for i in range(0, n, step)])
        scores = scores.masked_fill(~mask[:, None], float("-inf"))
        weights = torch.softmax(at_least_float32(scores), dim=-1)        # (n, group, time)
        context = torch.bmm(weights.to(memory.dtype), memory)            # (n, group, mem)
        return context.reshape(-1, memory.size(-1)), weights.reshape(-1, time)  # (N, mem), (N, time)


def at_least_float32(x: Tensor) -> Tensor:
    """Softmax and log-probabilities in float32 at least: under bf16/fp16 autocast the scores
    would otherwise be normalised in 8 bits of mantissa."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def per_hypothesis(x: Tensor, rows: int) -> Tensor:
    """A per-example tensor (n, ...) repeated for each of the ``rows / n`` hypotheses of its example."""
    group = rows // x.size(0)
    return x if group == 1 else x.repeat_interleave(group, dim=0)       # (rows, ...)


class SGM(nn.Module):
    # ``step`` takes static tensors with one row per example and state with any whole number of
    # consecutive rows (hypotheses) per example; see seq2labels.decoding.search.StepModel.
    static_per_example = True

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        mem = cfg.memory_dim
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
        memory, mask = self.encoder(src, src_lengths)                    # (batch, time, mem), (batch, time)
        if getattr(self.encoder, "memory_zero_on_padding", False):        # a swapped-in encoder may not promise it
            memory_on_tokens = memory
        else:
            memory_on_tokens = memory * mask.unsqueeze(-1)               # (batch, time, mem)
        pooled = memory_on_tokens.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # (batch, mem)
        static = {"memory": memory, "mask": mask}
        if self.config.bag_of_words:
            static["bow_logits"] = self._bag_of_words_logits(src, mask)      # (batch, V)
        if self.attention is not None:
            static["keys"] = at_least_float32(self.attention.project_keys(memory))  # (batch, time, hidden)
        else:
            static["pooled"] = pooled
        batch = src.size(0)
        state = {
            "h": torch.tanh(self.init_h(pooled)),                        # (batch, dec)
            "c": torch.tanh(self.init_c(pooled)),                        # (batch, dec)
            "context": pooled,                                           # (batch, mem) input feeding
        }
        if self.config.global_embedding:
            probs = torch.zeros(batch, self.config.num_outputs, device=src.device)  # (batch, V)
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
    def forward(self, src: Tensor, src_lengths: Tensor, targets: Tensor) -> Tensor:
        """Teacher forcing. targets (batch, steps): labels, EOS, PAD.

        Returns log-probabilities (batch, steps, V) under the same mask decoding uses:
        PAD, BOS and every gold label emitted at an earlier step are forbidden.
        """
        return teacher_forced_log_probs(self, src, src_lengths, targets)  # (batch, steps, V)
