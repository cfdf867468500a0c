"""The word-piece tokenizer of a pretrained transformer, plugged into the regex tokenizer's path.

``encode_dataset`` calls ``tokenizer(text, max_tokens=...)`` and then ``vocab.encode(tokens)``;
:class:`WordPieceTokenizer` returns the model's own pieces (no special tokens: the encoder adds
[CLS]/[SEP] around each window) already cut to the model's budget, and :meth:`build_vocab`
gives a :class:`Vocab` over those pieces plus the map from our ids to the model's ids.
The tokenizer is the model's ``tokenizer.json``, read with the ``tokenizers`` package (imported
lazily) and copied into every saved model folder, so a saved model needs no other file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seq2labels.data.vocab import SPECIAL_TOKENS, Vocab
from seq2labels.utils.hf import require_tokenizers, require_transformers

TOKENIZER_FILE = "tokenizer.json"
TRUNCATIONS = ("head", "head_tail")    # which pieces of a long text are kept (windows keep the head too)
SPECIAL_ROLES = ("cls", "sep", "pad", "unk")


class WordPieceTokenizer:
    """A Hugging Face fast tokenizer cut to ``max_tokens`` pieces per text.

    ``truncation="head"`` keeps the first ``max_tokens`` pieces; ``"head_tail"`` keeps the first
    ``head_tokens`` and the last ``max_tokens - head_tokens`` (Sun et al. 2019: the end of a long
    text often says what it is about).
    """

    type_name = "wordpiece"

    def __init__(self, tokenizer_json: str, specials: dict[str, str | None], *, max_tokens: int,
                 truncation: str = "head", head_tokens: int = 0):
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {', '.join(TRUNCATIONS)}, got {truncation!r}")
        if max_tokens < 1 or not 0 <= head_tokens <= max_tokens:
            raise ValueError(f"need max_tokens >= 1 and 0 <= head_tokens <= max_tokens, got {max_tokens}, {head_tokens}")
        tokenizers = require_tokenizers()
        self._tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        self._tokenizer.no_padding()          # pieces of one text, never padded or cut by the library
        self._tokenizer.no_truncation()
        self.specials = {role: specials.get(role) for role in SPECIAL_ROLES}
        self.max_tokens = int(max_tokens)
        self.truncation = truncation
        self.head_tokens = int(head_tokens)

    # ---- building ------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, **settings: Any) -> "WordPieceTokenizer":
        """The tokenizer of a local model folder, read by transformers' AutoTokenizer offline."""
        transformers = require_transformers()
        hf = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"{folder}: its tokenizer has no fast (tokenizer.json) form")
        specials = {role: getattr(hf, f"{role}_token", None) for role in SPECIAL_ROLES}
        return cls(backend.to_str(), specials, **settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (config.json); the tokenizer itself is :data:`TOKENIZER_FILE`."""
        return {"type": self.type_name, "file": TOKENIZER_FILE, "specials": dict(self.specials),
                "max_tokens": self.max_tokens, "truncation": self.truncation, "head_tokens": self.head_tokens}

    def model_files(self) -> dict[str, str]:
        """Extra files a model folder needs to rebuild this tokenizer (name -> text)."""
        return {TOKENIZER_FILE: self._tokenizer.to_str()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: str | Path) -> "WordPieceTokenizer":
        """Rebuild from :meth:`to_dict` and the folder holding :data:`TOKENIZER_FILE`."""
        if d.get("type") != cls.type_name:
            raise ValueError(f"not a {cls.type_name} tokenizer: type {d.get('type')!r}")
        path = Path(folder) / str(d.get("file", TOKENIZER_FILE))
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"{path.name} is missing") from None
        return cls(text, d.get("specials") or {}, max_tokens=int(d["max_tokens"]),
                   truncation=d.get("truncation", "head"), head_tokens=int(d.get("head_tokens", 0)))

    # ---- ids -----------------------------------------------------------------------
    def token_id(self, role: str) -> int | None:
        """The model's id of a special token (``cls``, ``sep``, ``pad``, ``unk``), None if it has none."""
        token = self.specials.get(role)
        return None if token is None else self._tokenizer.token_to_id(token)

    def build_vocab(self) -> tuple[Vocab, list[int]]:
        """Our vocabulary over the model's pieces (PAD and UNK first, as :class:`Vocab` wants) and,
        per our id, the model's id: the encoder maps ids through it."""
        model_vocab = self._tokenizer.get_vocab(with_added_tokens=True)          # piece -> model id
        pad, unk = self.token_id("pad"), self.token_id("unk")
        if unk is None:
            raise ValueError("the tokenizer has no unknown token; seq2labels needs one for unseen pieces")
        skip = {pad, unk}
        pieces = sorted((i, p) for p, i in model_vocab.items() if i not in skip and p not in SPECIAL_TOKENS)
        tokens = [*SPECIAL_TOKENS, *(p for _, p in pieces)]
        model_ids = [pad if pad is not None else unk, unk, *(i for i, _ in pieces)]
        return Vocab(tokens), model_ids

    # ---- text -> pieces ------------------------------------------------------------------
    def _encode(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"the tokenizer takes a str, got {type(text).__name__}")
        return self._tokenizer.encode(text, add_special_tokens=False)

    def kept_positions(self, n: int) -> list[int]:
        """Which of a text's ``n`` pieces the model reads, in order."""
        if n <= self.max_tokens:
            return list(range(n))
        if self.truncation == "head":
            return list(range(self.max_tokens))
        tail = self.max_tokens - self.head_tokens
        return [*range(self.head_tokens), *range(n - tail, n)]

    def __call__(self, text: str, max_tokens: int | None = None) -> list[str]:
        """The pieces the model reads (cut by the truncation rule), then at most ``max_tokens``."""
        pieces = self._encode(text).tokens
        kept = [pieces[i] for i in self.kept_positions(len(pieces))]
        return kept if max_tokens is None else kept[:max(int(max_tokens), 0)]

    def count(self, text: str) -> int:
        """How many pieces the whole text has (more than the model reads when it was cut)."""
        return len(self._encode(text).tokens)

    def word_count(self, text: str) -> int:
        """How many words the whole text has (as the model's pre-tokenizer splits them)."""
        return len({w for w in self._encode(text).word_ids if w is not None})

    def words(self, text: str) -> list[tuple[str, list[int]]]:
        """The words behind the pieces the model reads: (word as written, its positions among those
        pieces), in order; explanations sum a word's pieces' attention. A word the cut split in
        two gives two entries."""
        enc = self._encode(text)
        groups: list[tuple[int, int, list[int]]] = []     # (start char, end char, piece positions)
        previous = None                                   # (word id, piece index) of the last piece
        kept = self.kept_positions(len(enc.tokens))
        for pos, i in enumerate(kept):
            word, (start, end) = enc.word_ids[i], enc.offsets[i]
            if groups and word is not None and previous == (word, i - 1):
                first, _, positions = groups[-1]
                groups[-1] = (first, end, [*positions, pos])
            else:
                groups.append((start, end, [pos]))
            previous = (word, i)
        return [(text[start:end] or enc.tokens[kept[positions[0]]], positions) for start, end, positions in groups]

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(max_tokens={self.max_tokens}, truncation={self.truncation!r}, "
                f"head_tokens={self.head_tokens})")
