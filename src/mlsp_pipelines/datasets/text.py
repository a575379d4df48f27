"""Text corpora, word-similarity and analogy benchmarks, and word vectors, as Kedro datasets.

Defaults need no file from the user: with ``filepath`` left empty (``null`` or ``""``) the
datasets read the copies that gensim's wheel ships in ``gensim/test/test_data``:

* :class:`TextCorpusDataset` → ``lee_background.cor`` (the Lee news corpus, 300 documents,
  one per line, about 60k tokens);
* :class:`WordSimDataset` → ``wordsim353.tsv`` (353 word pairs with human similarity scores);
* :class:`AnalogyDataset` → ``questions-words.txt`` (19,544 ``a : b :: c : d`` questions).

Any other plain-text file plugs in through the catalog, e.g. ``filepath:
${runtime_params:corpus_path, null}`` and ``kedro run --params corpus_path=/path/book.txt``.
:class:`Word2VecTextDataset` writes (and reads) vectors in the word2vec text format that
``gensim.models.KeyedVectors.load_word2vec_format`` loads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from kedro.io import DatasetError

from mlsp_pipelines.datasets.atomic import atomic_path
from mlsp_pipelines.datasets.files import FileDataset

logger = logging.getLogger(__name__)

GENSIM_CORPUS = "lee_background.cor"
GENSIM_WORDSIM = "wordsim353.tsv"
GENSIM_ANALOGIES = "questions-words.txt"


def gensim_test_file(name: str) -> Path:
    """A file of gensim's bundled test data (``gensim/test/test_data/<name>``)."""
    from gensim.test.utils import datapath

    return Path(datapath(name))


class TextCorpus(list):
    """A list of documents (``str``) that remembers the file it came from (``source``)."""

    def __init__(self, docs: list[str], source: str = "<memory>") -> None:
        super().__init__(docs)
        self.source = source


def split_documents(text: str, layout: str) -> list[str]:
    """Documents of ``text``: one per non-blank line (``lines``) or per blank-line separated
    paragraph (``paragraphs``, for wrapped plain text such as a book)."""
    if layout == "lines":
        docs = text.splitlines()
    elif layout == "paragraphs":
        docs, block = [], []
        for line in text.splitlines():
            if line.strip():
                block.append(line.strip())
            elif block:
                docs.append(" ".join(block))
                block = []
        if block:
            docs.append(" ".join(block))
    else:
        raise ValueError(f"layout must be 'lines' or 'paragraphs', got {layout!r}")
    return [d.strip() for d in docs if d.strip()]


class _DefaultFileDataset(FileDataset):
    """A read-only local file whose empty ``filepath`` means a file of gensim's test data."""

    DEFAULT: str = ""
    WHAT: str = "file"

    def __init__(self, *, filepath: str | None = None, encoding: str = "utf-8",
                 metadata: dict[str, Any] | None = None) -> None:
        self._given = bool(filepath and str(filepath).strip())
        super().__init__(filepath=str(Path(str(filepath)).expanduser() if self._given else gensim_test_file(self.DEFAULT)),
                         metadata=metadata)
        self._encoding = encoding

    @property
    def source(self) -> str:
        """The file as outputs record it: the path as configured, or ``gensim:<name>`` for the
        bundled default, whose absolute path (inside the virtual environment) differs per clone."""
        return str(self._filepath) if self._given else f"gensim:{self.DEFAULT}"

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "default": not self._given, "type": type(self).__name__}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _read_text(self) -> str:
        if not self._filepath.is_file():
            raise DatasetError(f"{self.WHAT} {self._filepath}: file not found")
        try:
            return self._filepath.read_text(encoding=self._encoding)
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{self.WHAT} {self._filepath}: not {self._encoding} text ({exc}); "
                               "set 'encoding' in the catalog entry") from exc

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self._filepath}: {type(self).__name__} is read-only")


class TextCorpusDataset(_DefaultFileDataset):
    """A corpus file → :class:`TextCorpus` (list of document strings, ``.source`` = the path).

    ``layout``: ``lines`` (one document per line, blank lines skipped) or ``paragraphs``
    (documents separated by blank lines). A file without any text is an error naming it::

        word2vec.corpus:
          type: mlsp_pipelines.datasets.text.TextCorpusDataset
          filepath: ${runtime_params:corpus_path, ''}   # empty: gensim's Lee corpus
    """

    DEFAULT = GENSIM_CORPUS
    WHAT = "text corpus"

    def __init__(self, *, filepath: str | None = None, layout: Literal["lines", "paragraphs"] = "lines",
                 encoding: str = "utf-8", metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=filepath, encoding=encoding, metadata=metadata)
        if layout not in ("lines", "paragraphs"):
            raise DatasetError(f"TextCorpusDataset layout must be 'lines' or 'paragraphs', got {layout!r}")
        self._layout = layout

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "layout": self._layout}

    def load(self) -> TextCorpus:
        if not self._filepath.is_file():
            raise DatasetError(
                f"text corpus {self._filepath}: file not found; pass a plain-text file with "
                "--params corpus_path=/path/to/corpus.txt (one document per line) or leave it unset "
                "for the bundled Lee corpus"
            )
        docs = split_documents(self._read_text(), self._layout)
        if not docs:
            raise DatasetError(f"text corpus {self._filepath} is empty: it holds no non-blank line of text")
        logger.info("read %d documents from %s", len(docs), self._filepath)
        return TextCorpus(docs, self.source)

    def save(self, data: list[str]) -> None:
        """Write one document per line (newlines inside a document become spaces)."""
        if not self._given:
            raise DatasetError("TextCorpusDataset without a filepath reads gensim's corpus and cannot be saved")
        lines = [" ".join(str(d).split()) for d in data]
        with atomic_path(self._filepath) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding=self._encoding)


class WordSimDataset(_DefaultFileDataset):
    """Word pairs with similarity scores → DataFrame ``word1, word2, score``.

    Tab- (or whitespace-) separated ``word1 word2 score`` lines; ``#`` lines are comments::

        word2vec.wordsim:
          type: mlsp_pipelines.datasets.text.WordSimDataset
          filepath: ''   # empty: gensim's wordsim353.tsv
    """

    DEFAULT = GENSIM_WORDSIM
    WHAT = "word-similarity file"

    def load(self) -> pd.DataFrame:
        rows = []
        for n, line in enumerate(self._read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            try:
                rows.append((parts[0].strip(), parts[1].strip(), float(parts[2])))
            except (IndexError, ValueError) as exc:
                raise DatasetError(f"{self._filepath}:{n}: expected 'word1<TAB>word2<TAB>score', got {line!r}") from exc
        if not rows:
            raise DatasetError(f"word-similarity file {self._filepath} holds no pairs")
        return pd.DataFrame(rows, columns=["word1", "word2", "score"])


class AnalogyDataset(_DefaultFileDataset):
    """Analogy questions (``questions-words.txt`` layout) → DataFrame ``section, a, b, c, d``.

    ``: name`` lines start a section; each other line is ``a b c d`` (a is to b as c is to d)::

        word2vec.analogies:
          type: mlsp_pipelines.datasets.text.AnalogyDataset
          filepath: ''   # empty: gensim's questions-words.txt
    """

    DEFAULT = GENSIM_ANALOGIES
    WHAT = "analogy file"

    def load(self) -> pd.DataFrame:
        rows, section = [], ""
        for n, line in enumerate(self._read_text().splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith(":"):
                section = line[1:].strip()
                continue
            parts = line.split()
            if len(parts) != 4:
                raise DatasetError(f"{self._filepath}:{n}: expected four words 'a b c d', got {line!r}")
            rows.append((section, *parts))
        if not rows:
            raise DatasetError(f"analogy file {self._filepath} holds no questions")
        return pd.DataFrame(rows, columns=["section", "a", "b", "c", "d"])


class Word2VecTextDataset(FileDataset):
    """Word vectors in the word2vec text format (``V D`` header, then ``word v1 ... vD`` per line).

    ``save`` takes ``{"words": [...], "vectors": (V, D) array}`` (or a gensim ``KeyedVectors``);
    ``load`` returns the same dict. Words must not contain whitespace::

        "word2vec.{model}.embeddings":
          type: mlsp_pipelines.datasets.text.Word2VecTextDataset
          filepath: data/07_model_output/word2vec/{model}/embeddings.txt
    """

    def __init__(self, *, filepath: str, precision: int = 6, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=filepath, metadata=metadata)
        self._precision = precision

    def load(self) -> dict[str, Any]:
        self._require()
        with open(self._filepath, encoding="utf-8") as f:
            header = f.readline().split()
            n, dim = int(header[0]), int(header[1])
            words, rows = [], []
            for line in f:
                parts = line.rstrip("\n").split(" ")
                words.append(parts[0])
                rows.append(np.asarray(parts[1 : dim + 1], dtype=np.float32))
        if len(words) != n:
            raise DatasetError(f"{self._filepath}: header says {n} words, found {len(words)}")
        return {"words": words, "vectors": np.stack(rows) if rows else np.zeros((0, dim), np.float32)}

    def save(self, data: Any) -> None:
        if hasattr(data, "index_to_key"):
            words, vectors = list(data.index_to_key), np.asarray(data.vectors)
        else:
            words, vectors = list(data["words"]), np.asarray(data["vectors"])
        if vectors.ndim != 2 or len(words) != len(vectors):
            raise DatasetError(f"{self._filepath}: need one vector per word, got {len(words)} words and "
                               f"vectors of shape {vectors.shape}")
        bad = [w for w in words if not w or any(c.isspace() for c in w)]
        if bad:
            raise DatasetError(f"{self._filepath}: words with whitespace cannot be written: {bad[:5]}")
        fmt = f"%.{self._precision}g"
        with atomic_path(self._filepath) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(f"{len(words)} {vectors.shape[1]}\n")
                for w, v in zip(words, vectors):
                    f.write(w + " " + " ".join(fmt % x for x in v) + "\n")
