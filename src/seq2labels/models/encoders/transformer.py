"""A pretrained transformer (any local Hugging Face ``AutoModel``) as the encoder SGM attends over.

Every setting lives in ``SGMConfig.encoder_options`` (JSON, saved in config.json), including
the Hugging Face config itself, so a saved model is rebuilt with ``AutoModel.from_config``
and our own model.safetensors: no network, no pretrained folder, no pip package of the model.
``transformers`` is imported only when such an encoder is built.

Modes (``mode``): ``frozen`` keeps every transformer weight fixed; its token states are then
a pure function of the text, so :meth:`TransformerEncoder.enable_cache` lets training compute
them once per text and train the decoder over the stored states. ``finetune`` trains the
whole transformer, or only its top ``train_layers`` layers, at its own learning rate ``lr``
(see :meth:`TransformerEncoder.parameter_groups`).

Long texts: the word pieces are cut into windows of at most ``window`` pieces; each window is
read on its own between [CLS] and [SEP] and the windows' piece states are concatenated, so the
memory holds one vector per piece (the special tokens' states are left out).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from seq2labels.models.config import SGMConfig
from seq2labels.models.encoders.base import EncoderOutput, masked_mean
from seq2labels.models.layers import Dropout
from seq2labels.utils.hf import require_transformers

MODES = ("frozen", "finetune")
POOLINGS = ("mean", "cls")
PRECISIONS = ("fp32", "bf16")
# options (with their defaults) a transformer encoder reads from SGMConfig.encoder_options
DEFAULT_OPTIONS = {"hf_config": None, "mode": "frozen", "train_layers": None, "lr": 5e-5, "window": None,
                   "pooling": "mean", "precision": "fp32", "frozen_memory": "bf16", "special_ids": {},
                   "source": None}


def checked_options(options: dict) -> dict:
    """``options`` over the defaults, each value checked (a ValueError names the bad one)."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown transformer encoder options: {', '.join(unknown)}")
    opts = {**DEFAULT_OPTIONS, **options}
    if not isinstance(opts["hf_config"], dict) or "model_type" not in opts["hf_config"]:
        raise ValueError("transformer encoder_options need hf_config: the Hugging Face config as a dict")
    for key, choices in (("mode", MODES), ("pooling", POOLINGS), ("precision", PRECISIONS),
                         ("frozen_memory", ("bf16", "fp32"))):
        if opts[key] not in choices:
            raise ValueError(f"transformer option {key} must be one of {', '.join(choices)}, got {opts[key]!r}")
    if opts["train_layers"] is not None and int(opts["train_layers"]) < 1:
        raise ValueError(f"train_layers must be >= 1 or None (all), got {opts['train_layers']}")
    if float(opts["lr"]) <= 0:
        raise ValueError(f"the encoder learning rate must be > 0, got {opts['lr']}")
    return opts


def hf_model_from_config(hf_config: dict) -> nn.Module:
    """The bare transformer (no task head, no pooler where the family allows) from its config dict."""
    transformers = require_transformers()
    config = transformers.AutoConfig.for_model(**hf_config)
    try:
        return transformers.AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:                                    # families without a pooler flag
        return transformers.AutoModel.from_config(config)


def layer_list(model: nn.Module, n_layers: int) -> nn.ModuleList:
    """The transformer's stack of ``n_layers`` blocks (encoder.layer in BERT, transformer.layer ...)."""
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
    if not stacks:
        raise ValueError(f"cannot find the {n_layers} transformer layers to fine-tune in {type(model).__name__}")
    return stacks[0]


class TransformerEncoder(nn.Module):
    """Word-piece ids -> transformer -> EncoderOutput(memory per piece, mask, pooled)."""

    def __init__(self, cfg: SGMConfig):
        super().__init__()
        opts = checked_options(cfg.encoder_options)
        self.options = opts
        self.model = hf_model_from_config(opts["hf_config"])
        hidden = int(self.model.config.hidden_size)
        self.hidden_size = hidden
        limit = int(getattr(self.model.config, "max_position_embeddings", 512) or 512)
        ids = opts["special_ids"]
        self.cls_id, self.sep_id = ids.get("cls"), ids.get("sep")
        self.pad_id = int(ids.get("pad") or 0)
        specials = int(self.cls_id is not None) + int(self.sep_id is not None)
        self.window = int(opts["window"] or min(limit, 512) - specials)
        if not 1 <= self.window <= limit - specials:
            raise ValueError(f"window {self.window} does not fit the model's {limit} positions")
        # our vocabulary id -> the model's id (filled from the tokenizer, saved with the weights)
        self.register_buffer("model_ids", torch.zeros(cfg.vocab_size, dtype=torch.long))
        self.dropout = Dropout(cfg.dropout)
        self.cache: dict[bytes, tuple[Tensor, Tensor | None]] | None = None
        self._frozen_modules: list[nn.Module] = []
        self._set_trainable(opts["mode"], opts["train_layers"])

    # ---- set-up --------------------------------------------------------------------------
    @property
    def output_dim(self) -> int:
        return self.hidden_size

    @property
    def frozen(self) -> bool:
        return self.options["mode"] == "frozen"

    def _set_trainable(self, mode: str, train_layers: int | None) -> None:
        """requires_grad off for every fixed weight; fixed blocks stay in eval mode (no dropout)."""
        if mode == "frozen":
            self.model.requires_grad_(False)
            self._frozen_modules = [self.model]
        elif train_layers is not None:
            layers = layer_list(self.model, int(self.model.config.num_hidden_layers))
            if int(train_layers) > len(layers):
                raise ValueError(f"train_layers={train_layers} but the model has {len(layers)} layers")
            self.model.requires_grad_(False)
            top = list(layers)[len(layers) - int(train_layers):]
            for block in top:
                block.requires_grad_(True)
            trained = {id(m) for block in top for m in block.modules()}
            self._frozen_modules = [m for m in self.model.modules()      # whole subtrees holding no trained block
                                    if not any(id(d) in trained for d in m.modules())]
        self.train(self.training)

    def train(self, mode: bool = True) -> "TransformerEncoder":
        super().train(mode)
        for module in self._frozen_modules:
            module.eval()
        return self

    def load_pretrained(self, folder: str) -> None:
        """Copy the weights of a local model folder in (safetensors only, offline)."""
        transformers = require_transformers()
        pretrained = transformers.AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        missing, unexpected = self.model.load_state_dict(pretrained.state_dict(), strict=False)
        unexpected = [k for k in unexpected if not k.startswith("pooler.")]
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not fit its config (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")

    def parameter_groups(self) -> list[dict]:
        """This encoder's trainable weights at its own learning rate (empty when frozen)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": float(self.options["lr"])}] if params else []

    # ---- frozen-state cache --------------------------------------------------------------
    def enable_cache(self) -> None:
        """Keep each text's states after its first pass (frozen mode only: they never change)."""
        if not self.frozen:
            raise ValueError("only a frozen encoder can cache its states (fine-tuning changes them)")
        self.cache = {}

    def disable_cache(self) -> None:
        self.cache = None

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, src: Tensor, lengths: Tensor) -> EncoderOutput:
        """src (batch, time) our piece ids, lengths (batch,): memory (batch, time, hidden) zero on
        padding, mask (batch, time), pooled (batch, hidden)."""
        time = src.size(1)
        mask = torch.arange(time, device=src.device)[None, :] < lengths[:, None]  # (batch, time)
        if self.cache is not None:
            memory, cls = self._cached_states(src, lengths)
        else:
            memory, cls = self._states(src, lengths)
        memory = memory * mask.unsqueeze(-1)                            # (batch, time, hidden)
        pooled = masked_mean(memory, mask, zero_on_padding=True) if cls is None else cls  # (batch, hidden)
        return EncoderOutput(self.dropout(memory), mask, pooled)

    def _states(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Piece states (batch, time, hidden) and, for cls pooling, the first window's [CLS] state."""
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.model.parameters())
        precision = (torch.autocast(src.device.type, dtype=torch.bfloat16)
                     if self.options["precision"] == "bf16" else contextlib.nullcontext())
        with torch.set_grad_enabled(grad), precision:
            memory, cls = self._windows(src, lengths)
        memory, cls = memory.float(), None if cls is None else cls.float()
        if self.frozen and self.options["frozen_memory"] == "bf16":  # what the cache stores, cached or not
            memory = memory.to(torch.bfloat16).float()
            cls = None if cls is None else cls.to(torch.bfloat16).float()
        return memory, cls

    def _windows(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Cut each text into windows of ``self.window`` pieces, run the non-empty ones through the
        transformer between [CLS] and [SEP], and put the pieces' states back in text order."""
        batch, time = src.shape
        n_win = max(1, math.ceil(time / self.window))
        padded = nn.functional.pad(src, (0, n_win * self.window - time))      # (batch, n_win * window)
        pieces = padded.view(batch * n_win, self.window)                     # (windows, window)
        starts = torch.arange(n_win, device=src.device) * self.window        # (n_win,)
        win_len = (lengths[:, None] - starts[None, :]).clamp(0, self.window).reshape(-1)  # (windows,)
        win_len[::n_win] = win_len[::n_win].clamp(min=1)                     # an empty text still gets a window
        rows = torch.nonzero(win_len > 0).squeeze(1)                         # (R,)
        hidden, offset = self._run(self.model_ids[pieces[rows]], win_len[rows])  # (R, L, hidden)
        n_max = hidden.size(1) - offset - int(self.sep_id is not None)
        states = hidden.new_zeros(batch * n_win, self.window, hidden.size(-1))  # (windows, window, hidden)
        states[rows, :n_max] = hidden[:, offset:offset + n_max]
        memory = states.view(batch, n_win * self.window, -1)[:, :time]      # (batch, time, hidden)
        cls = None
        if self.options["pooling"] == "cls":
            first = hidden.new_zeros(batch * n_win, hidden.size(-1))          # (windows, hidden)
            first[rows] = hidden[:, 0]
            cls = first.view(batch, n_win, -1)[:, 0]                          # (batch, hidden)
        return memory, cls

    def _run(self, ids: Tensor, n: Tensor) -> tuple[Tensor, int]:
        """ids (R, window) model ids, n (R,) real pieces per row -> hidden states (R, L, hidden) of
        [CLS] pieces [SEP] (L = longest row + specials), and where the pieces start."""
        offset = int(self.cls_id is not None)
        width = int(n.max()) + offset + int(self.sep_id is not None)
        inputs = ids.new_full((ids.size(0), width), self.pad_id)            # (R, L)
        body = ids[:, :min(ids.size(1), width - offset)]                       # (R, <= L - offset)
        inputs[:, offset:offset + body.size(1)] = body
        positions = torch.arange(width, device=ids.device)[None, :]         # (1, L)
        if self.cls_id is not None:
            inputs[:, 0] = self.cls_id
        if self.sep_id is not None:
            inputs[torch.arange(ids.size(0), device=ids.device), n + offset] = self.sep_id
        real = positions < (n + offset + int(self.sep_id is not None))[:, None]  # (R, L)
        inputs = inputs.masked_fill(~real, self.pad_id)
        out = self.model(input_ids=inputs, attention_mask=real.long())
        return out.last_hidden_state, offset                                 # (R, L, hidden)

    def _cached_states(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Like :meth:`_states`, reading texts seen before from the cache (keyed by their pieces)."""
        keys = [src[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths.tolist())]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            index = torch.tensor(missing, device=src.device)
            sub_lengths = lengths[index]
            memory, cls = self._states(src[index, :int(sub_lengths.max())], sub_lengths)
            dtype = torch.bfloat16 if self.options["frozen_memory"] == "bf16" else torch.float32  # exact either way
            for j, i in enumerate(missing):
                n = int(sub_lengths[j])
                self.cache[keys[i]] = (memory[j, :n].to(dtype).clone(),
                                       None if cls is None else cls[j].to(dtype).clone())
        out = src.new_zeros(src.shape + (self.hidden_size,), dtype=torch.float32)  # (batch, time, hidden)
        for i, key in enumerate(keys):
            stored, _ = self.cache[key]
            out[i, :stored.size(0)] = stored
        cls = None
        if self.options["pooling"] == "cls":
            cls = torch.stack([self.cache[key][1] for key in keys]).float()     # (batch, hidden)
        return out, cls
