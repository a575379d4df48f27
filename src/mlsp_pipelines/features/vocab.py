"""Token vocabularies for sequence-to-sequence models: character or word level.

Indices 0–3 are always the special tokens ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` (the
models' ``pad_idx``/``bos_idx``/``eos_idx`` defaults rely on it). Ordinary tokens follow,
most frequent first, ties broken alphabetically, so the same texts always give the same
vocabulary. Word level splits into runs of word characters and single punctuation marks
(``"Ein Mann, der..."`` → ``Ein``, ``Mann``, ``,``, ``der``, ``.``, ``.``, ``.``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
PAD_IDX, BOS_IDX, EOS_IDX, UNK_IDX = 0, 1, 2, 3
#: Target value the training loss ignores (``classification_loss``): padding of ``tgt_out``.
IGNORE_INDEX = -100

Level = Literal["char", "word"]
_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str, level: Level) -> list[str]:
    """Characters (spaces included) or words and punctuation marks of ``text``."""
    if level == "char":
        return list(text)
    if level == "word":
        return _WORD_RE.findall(text)
    raise ValueError(f"level must be 'char' or 'word', got {level!r}")


def detokenize(tokens: Sequence[str], level: Level) -> str:
    """Inverse of :func:`tokenize` for characters; words are joined with spaces (punctuation
    attached to the word before it)."""
    if level == "char":
        return "".join(tokens)
    out = ""
    for tok in tokens:
        if out and not (len(tok) == 1 and not tok.isalnum() and tok not in "([{\"'"):
            out += " "
        out += tok
    return out


@dataclass
class Vocab:
    """Token ↔ index mapping; ``tokens[:4]`` are :data:`SPECIALS`."""

    tokens: list[str]
    level: Level = "char"
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {self.tokens[:4]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {self.level!r}")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(
        cls, texts: Iterable[str], *, level: Level = "char", min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Vocabulary of the tokens of ``texts`` seen at least ``min_freq`` times, at most
        ``max_size`` tokens in all (specials included); the rest map to ``<unk>``."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size <= len(SPECIALS):
            raise ValueError(f"max_size must exceed the {len(SPECIALS)} special tokens, got {max_size}")
        counts = Counter(tok for text in texts for tok in tokenize(text, level))
        for special in SPECIALS:
            counts.pop(special, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *kept], level=level)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the catalog and model bundles)."""
        return {"level": self.level, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        return cls(list(data["tokens"]), level=data["level"])

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.level)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Indices of ``text``'s tokens (unknown ones → ``<unk>``), optionally framed by ``<bos>``/``<eos>``."""
        ids = [self.index.get(t, UNK_IDX) for t in self.tokenize(text)]
        return ([BOS_IDX] if bos else []) + ids + ([EOS_IDX] if eos else [])

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to (not including) the first ``<eos>``; ``<pad>`` and ``<bos>`` are dropped."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if i == EOS_IDX:
                break
            if i in (PAD_IDX, BOS_IDX):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return detokenize(self.decode_tokens(ids), self.level)


def pad_batch(seqs: Sequence[Sequence[int]], *, value: int = PAD_IDX, length: int | None = None) -> torch.Tensor:
    """Right-padded ``LongTensor`` (N, L); ``L`` is the longest sequence unless ``length`` is given."""
    width = max((len(s) for s in seqs), default=0) if length is None else length
    out = torch.full((len(seqs), max(width, 1)), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = list(s)[:width]
        if s:
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def encode_pairs(
    sources: Sequence[str], targets: Sequence[str], src_vocab: Vocab, tgt_vocab: Vocab
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model tensors for teacher forcing:

    * ``src`` (N, S): source ids, padded with ``<pad>``;
    * ``tgt_in`` (N, T): ``<bos>`` + target ids, padded with ``<pad>``;
    * ``tgt_out`` (N, T): target ids + ``<eos>``, padded with ``-100`` (ignored by the loss).
    """
    src = pad_batch([src_vocab.encode(s) for s in sources])
    tgt = [tgt_vocab.encode(t) for t in targets]
    tgt_in = pad_batch([[BOS_IDX, *t] for t in tgt])
    tgt_out = pad_batch([[*t, EOS_IDX] for t in tgt], value=IGNORE_INDEX)
    return src, tgt_in, tgt_out
