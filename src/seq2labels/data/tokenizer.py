"""A small, dependency-free regex tokenizer whose settings can be saved with a model."""

from __future__ import annotations

import re
import unicodedata
from itertools import islice
from typing import Any

# A word is a run of unicode letters/digits (``\w``), possibly joined by inner apostrophes
# (straight or curly) so "don't" and "rock'n'roll" stay whole; anything else that is not
# whitespace (punctuation, symbols, emoji) is a token of one character.
DEFAULT_PATTERN = r"\w+(?:['\u2019]\w+)*|[^\w\s]"


class RegexTokenizer:
    """Split text into tokens with one regular expression (``re.findall``).

    Text is NFC-normalized first so a letter written as base + combining accent is one
    word character, matching the precomposed form.
    """

    def __init__(self, lowercase: bool = True, pattern: str = DEFAULT_PATTERN):
        try:
            self._regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"invalid tokenizer pattern {pattern!r}: {err}") from None
        if self._regex.groups:
            raise ValueError("tokenizer pattern must not contain capturing groups "
                             "(use (?:...)), because re.findall would return the groups")
        self.lowercase = bool(lowercase)
        self.pattern = pattern

    def __call__(self, text: str, max_tokens: int | None = None) -> list[str]:
        """Tokens of ``text``, lowercased when the tokenizer was built with ``lowercase``.

        With ``max_tokens`` the scan stops after that many tokens: the result equals
        ``self(text)[:max_tokens]``, but a 1 MB text costs what its first tokens cost (plus one
        C-speed normalization pass) instead of building a list of every word in it.
        """
        if not isinstance(text, str):
            raise TypeError(f"the tokenizer takes a str, got {type(text).__name__}")
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        if max_tokens is None:
            return self._regex.findall(text)
        return [m.group() for m in islice(self._regex.finditer(text), max(int(max_tokens), 0))]

    def __repr__(self) -> str:
        return f"RegexTokenizer(lowercase={self.lowercase!r}, pattern={self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RegexTokenizer) and self.lowercase == other.lowercase
                and self.pattern == other.pattern)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings, stored with a model so prediction tokenizes like training."""
        return {"type": "regex", "lowercase": self.lowercase, "pattern": self.pattern}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegexTokenizer:
        """Rebuild a tokenizer saved by :meth:`to_dict`."""
        if d.get("type", "regex") != "regex":
            raise ValueError(f"unknown tokenizer type {d.get('type')!r}; expected 'regex'")
        return cls(lowercase=d.get("lowercase", True), pattern=d.get("pattern", DEFAULT_PATTERN))


def tokenize(tokenizer: Any, text: str, max_tokens: int | None) -> list[str]:
    """The first ``max_tokens`` tokens of ``text`` (all when None), stopping early when the
    tokenizer can (a :class:`RegexTokenizer`); any other callable is cut after the fact."""
    if isinstance(tokenizer, RegexTokenizer):
        return tokenizer(text, max_tokens=max_tokens)
    tokens = tokenizer(text)
    return tokens if max_tokens is None else tokens[:max_tokens]
