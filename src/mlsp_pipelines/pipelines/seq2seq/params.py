"""Typed parameter sections of the ``seq2seq`` pipeline (validated by Kedro before any node runs).

Training and model specs reuse :class:`~mlsp_pipelines.params.TrainParams` and
:class:`~mlsp_pipelines.params.ModelSpec`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlsp_pipelines.params import FractionSplitParams
from mlsp_pipelines.section import Section
from mlsp_pipelines.simulation.dates import check_styles


class DateSynthParams(Section):
    """The embedded default corpus: dates in many human styles → ISO 8601."""

    n_pairs: int = Field(6000, ge=10)
    seed: int = 42
    year_min: int = Field(1950, ge=1)
    year_max: int = Field(2049, le=9999)
    styles: list[str] | None = None  # None: every style of simulation.dates.STYLES

    @model_validator(mode="after")
    def _check(self) -> "DateSynthParams":
        check_styles(self.styles, year_min=self.year_min, year_max=self.year_max)
        return self


class Seq2SeqDataParams(Section):
    """Where the pairs come from and which are kept.

    ``source``: ``synthetic`` (the date generator), ``tsv`` (one ``source<TAB>target`` file,
    the ``seq2seq.corpus`` entry, ``--params corpus_path=...``, split by fractions), ``files``
    (a folder of official splits, ``seq2seq.corpus_splits``, ``--params corpus_dir=...``:
    ``train``/``val``/``test`` as ``.tsv`` or line-aligned ``.en``/``.de`` files) or ``auto``
    (``files`` when ``corpus_dir`` is given, else ``tsv`` when ``corpus_path`` is, else synthetic).
    Length limits are in tokens of ``vocab.level`` (in words for ``subword``, whose pieces
    depend on the model trained afterwards); longer training/validation pairs are dropped and
    counted; a given test split is never filtered or deduplicated (results stay comparable).
    Lines with columns after the second (a tab inside a sentence?) are counted in the
    data-quality report (``on_extra_columns: report``) or stop the run (``fail``).
    """

    source: Literal["auto", "synthetic", "tsv", "files"] = "auto"
    max_pairs: int | None = Field(None, ge=3)
    lowercase: bool = False
    dedupe: bool = True
    max_source_len: int | None = Field(None, ge=1)
    max_target_len: int | None = Field(None, ge=1)
    on_extra_columns: Literal["report", "fail"] = "report"


class VocabParams(Section):
    """Character-, word- or subword-level vocabularies (built on the training split only).
    Subwords: a SentencePiece model (``bpe`` or ``unigram``) of ``subword_vocab_size`` pieces per side."""

    level: Literal["char", "word", "subword"] = "char"
    min_freq: int = Field(1, ge=1)
    max_size: int | None = Field(None, ge=5)
    subword_vocab_size: int = Field(8000, ge=8)
    subword_model: Literal["bpe", "unigram"] = "bpe"
    # one vocabulary built from both sides' training text, used for source and target (what tied
    # embeddings need; related languages share most subwords); subword_vocab_size is then its size
    shared: bool = False


class Seq2SeqBatchParams(Section):
    """Length-bucketed batches: rows sorted by length within pools of ``pool`` batches (after a
    seeded shuffle per epoch), padding trimmed per batch; ``bucket: false`` = plain shuffling."""

    bucket: bool = True
    pool: int = Field(50, ge=1)
    # token-based batches (bucket: true): as many rows as fit max_tokens tokens of the longest row
    # (batch_size then only sizes the pools); null: batch_size rows per batch
    max_tokens: int | None = Field(None, ge=1)


class Seq2SeqSplitParams(FractionSplitParams):
    """Seeded random train/validation/test split of the (deduplicated) pairs of a single file;
    with split files, ``val_fraction`` of train is held out only when no validation file exists."""

    val_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(0.1, gt=0, lt=1)


class Seq2SeqReportParams(Section):
    """Decoding and plots on the test split."""

    beam_size: int = Field(1, ge=1)  # 1 = greedy
    # beam score / length ** length_penalty; a list: each is tried on the validation split (beam
    # decoding, sacreBLEU) and the best is used on the test split
    length_penalty: float | list[float] = 0.0
    max_len: int | None = Field(None, ge=1)  # None: 1.5 x the longest training target + 5
    batch_size: int = Field(256, ge=1)
    n_examples: int = Field(4, ge=1)  # attention heat-maps
    # a language code (the target's): also report ``bleu_tok``, BLEU on lowercased, Moses-tokenised
    # text as the Multi30K papers' tables quote it (for comparison with them; sacreBLEU stays the score)
    tokenized_bleu: str | None = Field(None, pattern=r"^[a-z]{2,3}$")

    @model_validator(mode="after")
    def _check_penalties(self) -> "Seq2SeqReportParams":
        values = self.length_penalties
        if not values or any(not (v >= 0) for v in values) or len(set(values)) != len(values):
            raise ValueError(f"length_penalty must be a number >= 0 or a list of distinct ones, got {self.length_penalty!r}")
        return self

    @property
    def length_penalties(self) -> list[float]:
        """The candidate length penalties (one: nothing to choose)."""
        return [float(v) for v in self.length_penalty] if isinstance(self.length_penalty, list) else [float(self.length_penalty)]

    def with_length_penalty(self, value: float) -> "Seq2SeqReportParams":
        """These settings with one length penalty (e.g. the one validation chose)."""
        return self.model_copy(update={"length_penalty": float(value)})
