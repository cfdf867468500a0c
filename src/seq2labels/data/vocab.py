"""The word vocabulary: token <-> id, with padding at 0 and unknown words at 1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN)


class Vocab:
    """A fixed list of tokens; a token's id is its position."""

    def __init__(self, tokens: list[str]):
        tokens = list(tokens)
        if tokens[:2] != list(SPECIAL_TOKENS):
            raise ValueError(f"a vocabulary must start with {SPECIAL_TOKENS}, got {tokens[:2]}")
        index: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not isinstance(tok, str):
                raise ValueError(f"token {i} is not a string: {tok!r}")
            if tok in index:
                raise ValueError(f"token {tok!r} appears twice (ids {index[tok]} and {i})")
            index[tok] = i
        self._tokens = tokens
        self._index = index

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_count: int = 1,
              max_size: int | None = None) -> Vocab:
        """Count tokens and keep the frequent ones.

        Order is by (-count, token) so the same data always gives the same ids;
        ``max_size`` includes the two special tokens.
        """
        _check_build_args(min_count, max_size)
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        kept = sorted((tok for tok, c in counts.items() if c >= min_count),
                      key=lambda tok: (-counts[tok], tok))
        if max_size is not None:
            kept = kept[:max_size - len(SPECIAL_TOKENS)]
        return cls([*SPECIAL_TOKENS, *kept])

    @property
    def tokens(self) -> list[str]:
        """The tokens in id order (a copy, so the vocabulary cannot be changed by accident)."""
        return list(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or the unknown id."""
        return self._index.get(token, UNK_ID)

    def id_to_token(self, token_id: int) -> str:
        """The token with id ``token_id`` (IndexError when out of range)."""
        if not 0 <= token_id < len(self._tokens):
            raise IndexError(f"token id {token_id} out of range [0, {len(self._tokens)})")
        return self._tokens[token_id]

    def encode(self, tokens: list[str], max_len: int | None = None) -> list[int]:
        """Ids of ``tokens``, truncated to the first ``max_len``; unknown tokens map to 1."""
        if max_len is not None:
            if max_len < 1:
                raise ValueError(f"max_len must be >= 1 or None, got {max_len}")
            tokens = tokens[:max_len]
        get = self._index.get
        return [get(tok, UNK_ID) for tok in tokens]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, saved with a model."""
        return {"tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        """Rebuild a vocabulary saved by :meth:`to_dict`."""
        if "tokens" not in d:
            raise ValueError("vocabulary dict has no 'tokens' key")
        return cls(d["tokens"])


def _check_build_args(min_count: int, max_size: int | None) -> None:
    """Fail early on settings that would silently give an empty or broken vocabulary."""
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                 or max_size < len(SPECIAL_TOKENS)):
        raise ValueError(f"max_size must be None or an integer >= {len(SPECIAL_TOKENS)} "
                         f"(it counts {SPECIAL_TOKENS}), got {max_size!r}")
