"""Seq2seq data: the date generator, the TSV parallel-corpus loader, vocabularies, splits, BLEU."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from kedro.io import DatasetError
from pydantic import ValidationError

from mlsp_pipelines.features.vocab import (
    BOS_IDX,
    EOS_IDX,
    IGNORE_INDEX,
    PAD_IDX,
    SPECIALS,
    UNK_IDX,
    Vocab,
    detokenize,
    encode_pairs,
    tokenize,
)
from mlsp_pipelines.ingestion.parallel import (
    MalformedCorpusError,
    ParallelTSVDataset,
    parse_parallel_lines,
    read_parallel_tsv,
    write_parallel_tsv,
)
from mlsp_pipelines.pipelines.seq2seq import nodes
from mlsp_pipelines.pipelines.seq2seq.metrics import (
    corpus_bleu,
    corpus_bleu_details,
    exact_match,
    token_accuracy,
)
from mlsp_pipelines.pipelines.seq2seq.params import (
    DateSynthParams,
    Seq2SeqDataParams,
    Seq2SeqSplitParams,
    VocabParams,
)
from mlsp_pipelines.simulation.dates import STYLES, format_date, generate_date_pairs, ordinal

MULTI30K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k-sample"


# -- date generator -----------------------------------------------------------------------------
def test_generator_is_deterministic_and_seeded() -> None:
    a = generate_date_pairs(300, seed=3)
    assert a == generate_date_pairs(300, seed=3)
    assert a != generate_date_pairs(300, seed=4)
    assert len({s for s, _, _ in a}) > 250  # varied sources
    lengths = [len(s) for s, _, _ in a]
    assert min(lengths) <= 8 and max(lengths) >= 24  # varied lengths
    assert {style for _, _, style in generate_date_pairs(2000, seed=0)} == set(STYLES)


def test_issue_examples_are_rendered() -> None:
    d = dt.date(1998, 3, 3)  # a Tuesday
    rendered = {format_date(d, s) for s in STYLES}
    for text in ("the 3rd of March, 1998", "03/03/98", "March 3 1998", "3 Mar 1998", "Tuesday, March 3, 1998"):
        assert text in rendered
    assert [ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


# Formats of an independent reader (not the generator's code): after lower-casing and removing
# "the", "of", ordinal suffixes and the apostrophe of '98, every source must parse with one of them.
_READ_FORMATS = ("%m/%d/%y", "%m/%d/%Y", "%d.%m.%Y", "%d.%m.%y", "%Y%m%d", "%B %d %Y", "%B %d, %Y", "%d %B %Y",
                 "%d %b %Y", "%b %d, %Y", "%d-%b-%Y", "%d %B, %Y", "%B %d, %y", "%A, %B %d, %Y", "%a %d %b %Y")


def _read_date(source: str, year_min: int, year_max: int) -> dt.date:
    text = source.lower().replace("'", "")
    text = re.sub(r"\bthe\b|\bof\b", "", text)
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip().replace(" ,", ",")
    for fmt in _READ_FORMATS:
        try:
            parsed = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if "%y" in fmt:  # two-digit year: the one year of the range with these last two digits
            parsed = parsed.replace(year=next(y for y in range(year_min, year_max + 1) if y % 100 == parsed.year % 100))
        return parsed
    raise AssertionError(f"cannot read {source!r} (normalised {text!r})")


def test_targets_are_valid_iso_dates_matching_the_source() -> None:
    weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for source, target, style in generate_date_pairs(3000, seed=11):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target), target
        date = dt.date.fromisoformat(target)
        assert 1950 <= date.year <= 2049
        assert _read_date(source, 1950, 2049) == date, (source, target, style)
        named = [w for w in weekdays if w in source.lower() or f"{w[:3]} " in source.lower()[:4]]
        if named:  # a weekday in the source is the right one
            assert named == [weekdays[date.weekday()]], (source, target)


def test_two_digit_years_need_a_century_window() -> None:
    with pytest.raises(ValueError, match="two-digit"):
        generate_date_pairs(5, year_min=1900, year_max=2049)
    pairs = generate_date_pairs(50, year_min=1800, year_max=2100, styles=["eu_dot", "the_ordinal_of"])
    assert all(1800 <= int(t[:4]) <= 2100 for _, t, _ in pairs)
    with pytest.raises(ValueError, match="unknown date style"):
        generate_date_pairs(5, styles=["klingon"])
    with pytest.raises(ValidationError, match="klingon"):
        DateSynthParams(styles=["klingon"])


# -- TSV loader ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def multi30k() -> Path:
    if not (MULTI30K / "train.tsv").is_file():
        pytest.skip(f"parallel-corpus sample not available: {MULTI30K}/train.tsv does not exist")
    return MULTI30K


def test_tsv_loader_reads_the_shared_sample(multi30k: Path) -> None:
    train = read_parallel_tsv(multi30k / "train.tsv")
    test = read_parallel_tsv(multi30k / "test.tsv")
    assert (len(train), len(test)) == (300, 100)
    first = (multi30k / "train.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert train[0] == (first[0], first[1])
    assert all(s and t and "\t" not in s + t for s, t in train + test)
    assert any("ä" in t or "ü" in t or "ö" in t or "ß" in t for _, t in train)  # UTF-8 German
    df = ParallelTSVDataset(filepath=str(multi30k / "test.tsv"), max_pairs=10).load()
    assert list(df.columns) == ["source", "target"] and len(df) == 10


def test_tsv_extra_columns_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "deu.txt"
    path.write_bytes("\ufeffGo.\tGeh.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\r\n\r\n"
                     "Hi.\tHallo!\tCC-BY 2.0\r\n".encode("utf-8"))
    assert read_parallel_tsv(path) == [("Go.", "Geh."), ("Hi.", "Hallo!")]
    out = tmp_path / "copy.tsv"
    write_parallel_tsv(out, [("a b", "c"), ("d", "e f")])
    assert read_parallel_tsv(out) == [("a b", "c"), ("d", "e f")]
    with pytest.raises(ValueError, match="pair 1"):
        write_parallel_tsv(out, [("a\tb", "c")])


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        (b"a\tb\nno tab here\nc\td\n", 2, "no tab"),
        (b"a\tb\nc\td\n\ne\t \n", 4, "empty target"),
        (b"\tb\n", 1, "empty source"),
        (b"a\tb\nc\t\xff\xfe\n", 2, "UTF-8"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, content: bytes, line: int, what: str) -> None:
    path = tmp_path / "corpus.tsv"
    path.write_bytes(content)
    with pytest.raises(MalformedCorpusError, match=what) as err:
        read_parallel_tsv(path)
    assert f"{path}:{line}:" in str(err.value)
    with pytest.raises(DatasetError) as err:  # the same message through the Kedro dataset
        ParallelTSVDataset(filepath=str(path)).load()
    assert f"{path}:{line}:" in str(err.value)


def test_missing_corpus_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="corpus_path"):
        ParallelTSVDataset(filepath=str(tmp_path / "nope.tsv")).load()
    with pytest.raises(MalformedCorpusError, match="no 'source<TAB>target' lines"):
        (tmp_path / "empty.tsv").write_text("\n\n")
        read_parallel_tsv(tmp_path / "empty.tsv")
    assert parse_parallel_lines(["x\ty"], name="mem") == [("x", "y")]


# -- vocabularies -------------------------------------------------------------------------------
def test_char_and_word_vocabularies() -> None:
    texts = ["Ein Mann, der läuft.", "Ein Hund."]
    assert tokenize(texts[0], "word") == ["Ein", "Mann", ",", "der", "läuft", "."]
    assert tokenize("ab c", "char") == ["a", "b", " ", "c"]
    assert detokenize(tokenize(texts[0], "word"), "word") == texts[0]
    for level in ("char", "word"):
        v = Vocab.build(texts, level=level)
        assert tuple(v.tokens[:4]) == SPECIALS
        assert (PAD_IDX, BOS_IDX, EOS_IDX, UNK_IDX) == (0, 1, 2, 3)
        assert v.decode(v.encode(texts[1], bos=True, eos=True) + [v.index[v.tokens[5]]]) == texts[1]
        assert Vocab.from_dict(v.to_dict()).tokens == v.tokens
        assert v.tokens == Vocab.build(list(reversed(texts)), level=level).tokens  # order-independent
    words = Vocab.build(texts, level="word", min_freq=2)
    assert words.tokens == [*SPECIALS, ".", "Ein"]  # equal counts: alphabetical
    assert words.encode("Ein Katze.") == [5, UNK_IDX, 4]
    assert len(Vocab.build(texts, level="char", max_size=6)) == 6
    with pytest.raises(ValueError, match="level"):
        tokenize("x", "byte")  # type: ignore[arg-type]


def test_encode_pairs_layout() -> None:
    src_v, tgt_v = Vocab.build(["abc", "a"]), Vocab.build(["xy", "yyy"])
    src, tgt_in, tgt_out = encode_pairs(["abc", "a"], ["xy", "yyy"], src_v, tgt_v)
    assert src.shape == (2, 3) and src[1, 1:].tolist() == [PAD_IDX, PAD_IDX]
    assert tgt_in.shape == tgt_out.shape == (2, 4)
    assert tgt_in[:, 0].tolist() == [BOS_IDX, BOS_IDX]
    assert tgt_in[0, 1:3].tolist() == tgt_out[0, :2].tolist()  # shifted by one
    assert tgt_out[0].tolist()[2:] == [EOS_IDX, IGNORE_INDEX]
    assert tgt_in[0, 3].item() == PAD_IDX
    assert tgt_out.dtype == torch.long


# -- corpus preparation -------------------------------------------------------------------------
def test_split_is_seeded_disjoint_and_deduplicated() -> None:
    raw = nodes.generate_dates(DateSynthParams(n_pairs=400, seed=1))
    raw = pd.concat([raw, raw.iloc[:20]], ignore_index=True)  # 20 exact duplicates
    split = Seq2SeqSplitParams(val_fraction=0.1, test_fraction=0.2, seed=5)
    pairs, quality = nodes.prepare_corpus(raw, Seq2SeqDataParams(), VocabParams(), split)
    again, _ = nodes.prepare_corpus(raw, Seq2SeqDataParams(), VocabParams(), split)
    other, _ = nodes.prepare_corpus(raw, Seq2SeqDataParams(), VocabParams(), split.model_copy(update={"seed": 6}))
    assert pairs == again and pairs["test"] != other["test"]
    assert quality["duplicates_dropped"] >= 20
    n = quality["pairs_used"]
    assert (quality["n_test"], quality["n_val"]) == (round(0.2 * n), round(0.1 * n))
    seen = [set(zip(pairs[s]["source"], pairs[s]["target"])) for s in ("train", "val", "test")]
    assert sum(map(len, seen)) == n and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    short, q = nodes.prepare_corpus(raw, Seq2SeqDataParams(max_source_len=10), VocabParams(), split)
    assert q["too_long_dropped"] > 0 and all(len(s) <= 10 for s in short["train"]["source"])
    with pytest.raises(ValueError, match="too few"):
        nodes.prepare_corpus(raw.iloc[:2], Seq2SeqDataParams(), VocabParams(), split)
    with pytest.raises(ValidationError, match="val_fraction"):
        Seq2SeqSplitParams(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValidationError, match="level"):
        VocabParams(level="byte")


# -- metrics ------------------------------------------------------------------------------------
def test_bleu_against_hand_computed_values() -> None:
    hyp, ref = "a b c d e".split(), "a b c d f g".split()
    # p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2; c = 5 < r = 6: BP = exp(1 - 6/5)
    expected = math.exp(1 - 6 / 5) * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    details = corpus_bleu_details([hyp], [ref])
    assert details["precisions"] == pytest.approx([4 / 5, 3 / 4, 2 / 3, 1 / 2])
    assert details["brevity_penalty"] == pytest.approx(math.exp(-0.2))
    assert corpus_bleu([hyp], [ref]) == pytest.approx(expected)
    assert corpus_bleu([hyp], [ref]) == pytest.approx(0.547518, abs=1e-6)
    # clipping (Papineni et al.): 7 x "the" against a reference with two "the": p1 = 2/7
    assert corpus_bleu_details([["the"] * 7], ["the cat is on the mat".split()])["precisions"][0] == pytest.approx(2 / 7)
    # corpus level: counts are summed before dividing, not averaged per sentence
    h2, r2 = "w x y z".split(), "w x y z".split()
    # p1 = 8/9, p2 = 6/7, p3 = 4/5, p4 = 2/3; c = 9 < r = 10: BP = exp(1 - 10/9)
    expected2 = math.exp(1 - 10 / 9) * (8 / 9 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25
    assert corpus_bleu([hyp, h2], [ref, r2]) == pytest.approx(expected2)
    # perfect, no 4-gram match, longer hypothesis (no brevity penalty), empty
    assert corpus_bleu([ref], [ref]) == pytest.approx(1.0)
    assert corpus_bleu(["a b c".split()], ["a b c".split()]) == 0.0  # no 4-grams at all
    longer = corpus_bleu_details(["a b c d e f".split()], ["a b c d e".split()])
    assert longer["brevity_penalty"] == 1.0
    assert longer["bleu"] == pytest.approx((5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25)
    assert corpus_bleu([[]], [["a"]]) == 0.0
    with pytest.raises(ValueError, match="hypotheses"):
        corpus_bleu([hyp], [])


def test_exact_match_and_token_accuracy() -> None:
    refs = [list("1998-03-03"), list("2001-12-25")]
    hyps = [list("1998-03-03"), list("2001-12-2")]
    assert exact_match(hyps, refs) == 0.5
    # second: 9 of max(9, 10) = 10 positions agree
    assert token_accuracy(hyps, refs) == pytest.approx(19 / 20)
    assert token_accuracy([list("1998-03-03xx")], [list("1998-03-03")]) == pytest.approx(10 / 12)
