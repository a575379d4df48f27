"""Token vocabularies for sequence-to-sequence models: character, word or subword level.

Indices 0–3 are always the special tokens ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` (the
models' ``pad_idx``/``bos_idx``/``eos_idx`` defaults rely on it). Ordinary tokens follow,
most frequent first, ties broken alphabetically, so the same texts always give the same
vocabulary. Word level splits into runs of word characters and single punctuation marks
(``"Ein Mann, der..."`` → ``Ein``, ``Mann``, ``,``, ``der``, ``.``, ``.``, ``.``). Subword
level trains a SentencePiece model (BPE or unigram; the maintained library, not a hand-written
BPE) on the training texts and keeps it, serialised, inside the vocabulary; its pieces carry
``▁`` for a preceding space, so detokenising is exact.

Batching helpers for speed: :func:`bucket_batches` (length-bucketed batches, seeded per epoch)
and :func:`trim_batch` (drops padding columns no sequence of a batch uses).
"""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
PAD_IDX, BOS_IDX, EOS_IDX, UNK_IDX = 0, 1, 2, 3
#: Target value the training loss ignores (``classification_loss``): padding of ``tgt_out``.
IGNORE_INDEX = -100

Level = Literal["char", "word", "subword"]
LEVELS = ("char", "word", "subword")
SP_SPACE = "\u2581"  # SentencePiece's word-boundary mark
_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str, level: Level) -> list[str]:
    """Characters (spaces included) or words and punctuation marks of ``text``. (Subwords need
    a trained model: :meth:`Vocab.tokenize`; here ``subword`` counts words, e.g. for length limits.)"""
    if level == "char":
        return list(text)
    if level in ("word", "subword"):
        return _WORD_RE.findall(text)
    raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def train_subword_model(texts: Iterable[str], *, vocab_size: int, model_type: str = "bpe",
                        character_coverage: float = 1.0) -> bytes:
    """A SentencePiece model trained on ``texts`` (one thread, no sampling or shuffling, so the
    same texts give the same model). ``vocab_size`` may be lowered to what the texts support."""
    import sentencepiece as spm

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("cannot train a subword model on no text")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
        character_coverage=character_coverage, num_threads=1, hard_vocab_limit=False, shuffle_input_sentence=False,
        input_sentence_size=0, bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2,
    )
    return model.getvalue()


def detokenize(tokens: Sequence[str], level: Level) -> str:
    """Inverse of :func:`tokenize` for characters; words are joined with spaces (punctuation
    attached to the word before it)."""
    if level == "char":
        return "".join(tokens)
    if level == "subword":
        return "".join(tokens).replace(SP_SPACE, " ").strip()
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
    subword_model: bytes | None = field(default=None, repr=False)
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {self.tokens[:4]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if (self.level == "subword") != (self.subword_model is not None):
            raise ValueError("a subword vocabulary needs its SentencePiece model (and only it has one)")
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self._sp = None
        if self.subword_model is not None:
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_proto=self.subword_model)

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(
        cls, texts: Iterable[str], *, level: Level = "char", min_freq: int = 1, max_size: int | None = None,
        subword_vocab_size: int = 8000, subword_model_type: str = "bpe",
    ) -> Vocab:
        """Vocabulary of the tokens of ``texts`` seen at least ``min_freq`` times, at most
        ``max_size`` tokens in all (specials included); the rest map to ``<unk>``. Subword level
        first trains a SentencePiece model of ``subword_vocab_size`` pieces on ``texts``."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size <= len(SPECIALS):
            raise ValueError(f"max_size must exceed the {len(SPECIALS)} special tokens, got {max_size}")
        texts = list(texts)
        if level == "subword":
            model = train_subword_model(texts, vocab_size=subword_vocab_size, model_type=subword_model_type)
            probe = cls(list(SPECIALS), level="subword", subword_model=model)
            counts = Counter(tok for text in texts for tok in probe.tokenize(text))
        else:
            model = None
            counts = Counter(tok for text in texts for tok in tokenize(text, level))
        for special in SPECIALS:
            counts.pop(special, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *kept], level=level, subword_model=model)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the catalog and model bundles); a subword model as base64."""
        out: dict[str, Any] = {"level": self.level, "tokens": list(self.tokens)}
        if self.subword_model is not None:
            out["subword_model"] = base64.b64encode(self.subword_model).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        model = data.get("subword_model")
        return cls(list(data["tokens"]), level=data["level"],
                   subword_model=base64.b64decode(model) if model else None)

    def tokenize(self, text: str) -> list[str]:
        if self._sp is not None:
            return self._sp.encode(text, out_type=str)
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


# -- batching ----------------------------------------------------------------------------------
def sequence_lengths(*tensors: torch.Tensor) -> np.ndarray:
    """Per row, the longest non-padding length over ``tensors`` (padding: ``<pad>`` or ``-100``)."""
    lengths = [((t != PAD_IDX) & (t != IGNORE_INDEX)).sum(1).numpy() for t in tensors]
    return np.max(np.stack(lengths), axis=0)


def bucket_batches(lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
                   pool: int = 50, max_tokens: int | None = None) -> list[torch.Tensor]:
    """Length-bucketed batches of row indices: a seeded shuffle (per epoch), then rows sorted by
    length within pools of ``pool`` batches, cut into batches, and the batches shuffled. Rows of
    a batch have similar lengths, so little padding is computed, while batches still vary from
    epoch to epoch. Without ``shuffle``: rows sorted by length (evaluation).

    ``max_tokens`` cuts by a token budget instead of ``batch_size`` rows: a batch takes rows while
    rows x its longest length stays within it (at least one row), so short sentences come in
    large batches and long ones in small, and every update sees about the same number of tokens."""
    lengths = np.asarray(lengths)
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [torch.from_numpy(order[i : i + batch_size]) for i in range(0, n, batch_size)]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)])
    perm = rng.permutation(n)
    size = batch_size * pool
    batches = []
    for start in range(0, n, size):
        chunk = perm[start : start + size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        if max_tokens is None:
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        else:
            batches += _token_batches(chunk, lengths, max_tokens)
    return [torch.from_numpy(batches[i]) for i in rng.permutation(len(batches))]


def _token_batches(rows: np.ndarray, lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """``rows`` (sorted by length) cut where the next row would take rows x longest past ``max_tokens``."""
    longest = np.maximum.accumulate(np.maximum(lengths[rows], 1))
    out, start = [], 0
    while start < len(rows):
        # rows start..end-1 fit when (end - start) * longest[end - 1] <= max_tokens (sorted: longest is the last)
        fits = (np.arange(start + 1, len(rows) + 1) - start) * longest[start:] <= max_tokens
        end = start + max(1, int(np.argmin(fits)) if not fits.all() else len(fits))
        out.append(rows[start:end])
        start = end
    return out


def flat_targets(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """``(src, tgt_in, tgt_out)`` with ``tgt_out`` reduced to its M non-padded ids (row-major): the
    targets of a model whose ``valid_only`` logits are (M, V)."""
    src, tgt_in, tgt_out = batch
    return src, tgt_in, tgt_out[tgt_out != IGNORE_INDEX]


def trim_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """``(src, tgt_in, tgt_out)`` without the trailing padding columns that no row uses."""
    src, tgt_in, tgt_out = batch
    s = max(int((src != PAD_IDX).sum(1).max()), 1)
    t = max(int((tgt_out != IGNORE_INDEX).sum(1).max()), 1)
    return src[:, :s], tgt_in[:, :t], tgt_out[:, :t]
