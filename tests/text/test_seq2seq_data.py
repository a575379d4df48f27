"""Seq2seq data: the date generator, the TSV parallel-corpus loader, vocabularies, splits, BLEU."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DatasetError
from pydantic import ValidationError

from conftest import missing_real_data
from mlsp_pipelines.features.vocab import (
    BOS_IDX,
    bucket_batches,
    sequence_lengths,
    trim_batch,
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
from mlsp_pipelines.datasets.parallel import (
    MalformedCorpusError,
    ParallelSplitsDataset,
    ParallelTSVDataset,
    parse_parallel_lines,
    read_parallel_tsv,
    write_parallel_tsv,
)
from mlsp_pipelines.pipelines.seq2seq import nodes
from mlsp_pipelines.evaluation.translation import (
    bleu_by_length,
    corpus_bleu,
    corpus_bleu_details,
    exact_match,
    length_bucket,
    sacrebleu_scores,
    moses_normalise,
    sentence_bleu,
    token_accuracy,
    tokenized_bleu,
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
        missing_real_data(f"parallel-corpus sample not available: {MULTI30K}/train.tsv does not exist")
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
    assert list(df.columns) == ["source", "target", "line", "extra"] and len(df) == 10
    assert df["line"].tolist() == list(range(1, 11)) and (df["extra"] == "").all()


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
    assert quality["all_duplicates_dropped"] >= 20
    n = quality["pairs_used"]
    assert (quality["n_test"], quality["n_val"]) == (round(0.2 * n), round(0.1 * n))
    seen = [set(zip(pairs[s]["source"], pairs[s]["target"])) for s in ("train", "val", "test")]
    assert sum(map(len, seen)) == n and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    short, q = nodes.prepare_corpus(raw, Seq2SeqDataParams(max_source_len=10), VocabParams(), split)
    assert q["all_too_long_dropped"] > 0 and all(len(s) <= 10 for s in short["train"]["source"])
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



# -- split files, extra columns, subwords, batching, sacreBLEU ------------------------------------
def _write_splits(folder: Path) -> None:
    folder.mkdir()
    (folder / "train.en").write_text("A dog runs.\nA cat sleeps.\nTwo men talk loudly.\nA dog runs.\n", encoding="utf-8")
    (folder / "train.de").write_text("Ein Hund rennt.\nEine Katze schläft.\nZwei Männer reden.\nEin Hund rennt.\n",
                                     encoding="utf-8")
    (folder / "val.tsv").write_text("A man.\tEin Mann.\n", encoding="utf-8")
    (folder / "test_2016_flickr.en").write_text("A dog runs.\nA very very long sentence here.\n", encoding="utf-8")
    (folder / "test_2016_flickr.de").write_text("Ein Hund rennt.\nEin sehr sehr langer Satz hier.\n", encoding="utf-8")


def test_official_splits_are_kept_and_the_test_split_is_never_filtered(tmp_path: Path) -> None:
    _write_splits(tmp_path / "c")
    raw = ParallelSplitsDataset(path=str(tmp_path / "c")).load()
    assert raw.groupby("split").size().to_dict() == {"test": 2, "train": 4, "val": 1}
    assert set(raw["file"]) == {"train.en + train.de", "val.tsv", "test_2016_flickr.en + test_2016_flickr.de"}
    data = Seq2SeqDataParams(max_source_len=4)
    pairs, quality = nodes.prepare_corpus(raw, data, VocabParams(level="word"), Seq2SeqSplitParams())
    assert pairs["test"]["source"] == ["A dog runs.", "A very very long sentence here."]  # as given
    assert pairs["val"]["target"] == ["Ein Mann."] and quality["val_source"] == "file"
    # train: one duplicate dropped, "Two men talk loudly." (5 word tokens) too long
    assert pairs["train"]["source"] == ["A dog runs.", "A cat sleeps."]
    assert (quality["train_duplicates_dropped"], quality["train_too_long_dropped"]) == (1, 1)
    (tmp_path / "c" / "val.tsv").unlink()
    raw = ParallelSplitsDataset(path=str(tmp_path / "c")).load()
    pairs, quality = nodes.prepare_corpus(raw, Seq2SeqDataParams(), VocabParams(), Seq2SeqSplitParams(val_fraction=0.3))
    assert "held out of train" in quality["val_source"] and len(pairs["val"]["source"]) == 1
    assert len(pairs["train"]["source"]) == 2 and not set(pairs["val"]["source"]) & set(pairs["train"]["source"])


def test_split_folder_errors_name_what_is_missing(tmp_path: Path) -> None:
    _write_splits(tmp_path / "c")
    (tmp_path / "c" / "train.de").write_text("Ein Hund rennt.\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="not line-aligned"):
        ParallelSplitsDataset(path=str(tmp_path / "c")).load()
    (tmp_path / "c" / "train.en").unlink()
    with pytest.raises(DatasetError, match="no train split"):
        ParallelSplitsDataset(path=str(tmp_path / "c")).load()
    with pytest.raises(DatasetError, match="corpus_dir"):
        ParallelSplitsDataset(path=str(tmp_path / "nowhere")).load()


def test_the_shared_sample_as_split_files(multi30k: Path) -> None:
    raw = ParallelSplitsDataset(path=str(multi30k)).load()
    assert raw.groupby("split").size().to_dict() == {"test": 100, "train": 300}
    pairs, quality = nodes.prepare_corpus(raw, Seq2SeqDataParams(), VocabParams(level="word"), Seq2SeqSplitParams())
    assert len(pairs["test"]["source"]) == 100 and quality["extra_column_lines"] == 0
    assert quality["n_train"] + quality["n_val"] == 300 - quality["train_duplicates_dropped"]


def test_lines_with_an_extra_tab_are_reported_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("Go.\tGeh.\nHe said \"a\tb\".\tEr sagte.\tx\n" + "".join(f"s{i}\tt{i}\n" for i in range(20)),
                    encoding="utf-8")
    raw = ParallelTSVDataset(filepath=str(path)).load()
    assert raw.loc[1, ["source", "target", "line"]].tolist() == ['He said "a', 'b".', 2]
    _, quality = nodes.prepare_corpus(raw, Seq2SeqDataParams(), VocabParams(), Seq2SeqSplitParams())
    assert quality["extra_column_lines"] == 1 and quality["extra_column_examples"][0]["where"] == "corpus:2"
    with pytest.raises(ValueError, match="more than two tab-separated columns"):
        nodes.prepare_corpus(raw, Seq2SeqDataParams(on_extra_columns="fail"), VocabParams(), Seq2SeqSplitParams())


def test_subword_vocabulary_round_trips(multi30k: Path) -> None:
    texts = [t for _, t in read_parallel_tsv(multi30k / "train.tsv")]
    v = Vocab.build(texts, level="subword", subword_vocab_size=300)
    assert v.level == "subword" and 50 < len(v) <= 304
    pieces = v.tokenize(texts[0])
    assert len(pieces) > len(texts[0].split()) and any(p.startswith("\u2581") for p in pieces)
    assert all(v.decode(v.encode(t)) == t for t in texts[:50])  # lossless on the training text
    back = Vocab.from_dict(v.to_dict())
    assert back.tokens == v.tokens and back.tokenize(texts[1]) == v.tokenize(texts[1])
    assert Vocab.build(texts, level="subword", subword_vocab_size=300).tokens == v.tokens  # deterministic
    unigram = Vocab.build(texts, level="subword", subword_vocab_size=300, subword_model_type="unigram")
    assert unigram.tokens != v.tokens


def test_bucketed_batches_cover_every_row_once_and_group_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, size=1000)
    batches = bucket_batches(lengths, 32, seed=1, epoch=1, pool=10)
    rows = torch.cat(batches).numpy()
    assert sorted(rows.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b.numpy()]) for b in batches])
    assert spread < 0.25 * np.ptp(lengths)  # similar lengths within a batch
    again = bucket_batches(lengths, 32, seed=1, epoch=1, pool=10)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not all(torch.equal(a, b) for a, b in zip(batches, bucket_batches(lengths, 32, seed=1, epoch=2, pool=10)))
    ordered = torch.cat(bucket_batches(lengths, 32, seed=1, epoch=1, shuffle=False)).numpy()
    assert np.all(np.diff(lengths[ordered]) >= 0)


def test_trim_batch_drops_only_unused_padding() -> None:
    src_v, tgt_v = Vocab.build(["abcdef", "a"]), Vocab.build(["xyz", "y"])
    src, tgt_in, tgt_out = encode_pairs(["abcdef", "a", "ab"], ["xyz", "y", "x"], src_v, tgt_v)
    s, ti, to = trim_batch((src[1:], tgt_in[1:], tgt_out[1:]))
    assert s.shape == (2, 2) and ti.shape == to.shape == (2, 2)
    assert sequence_lengths(src, tgt_out).tolist() == [6, 2, 2]


def test_sacrebleu_scores_carry_their_signature() -> None:
    import sacrebleu

    hyps = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    refs = ["Ein Mann fährt ein Fahrrad.", "Zwei Hunde spielen im Schnee."]
    out = sacrebleu_scores(hyps, refs)
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert "tok:13a" in out["bleu_signature"] and "version:2.6.0" in out["bleu_signature"]
    assert out["chrf_signature"].startswith("nrefs:1") and 0 < out["bleu"] < 100
    # on whitespace-tokenised text our reference formula agrees with sacreBLEU (0-1 vs 0-100)
    toks = ["a b c d e f", "w x y z q"]
    assert 100 * corpus_bleu([t.split() for t in toks], [r.split() for r in ["a b c d e g", "w x y z q"]]) == \
        pytest.approx(sacrebleu.corpus_bleu(toks, [["a b c d e g", "w x y z q"]]).score, abs=1e-6)
    assert sacrebleu_scores(refs, refs)["bleu"] == pytest.approx(100.0)


def test_bleu_by_source_length_scores_each_bucket_alone() -> None:
    import sacrebleu

    assert [length_bucket(n) for n in (1, 10, 11, 20, 21, 30, 31, 99)] == \
        ["1-10", "1-10", "11-20", "11-20", "21-30", "21-30", "31-max", "31-max"]
    short_ref = ["a man rides a red bike .", "two dogs play in the snow ."]
    long_ref = ["a woman in a long blue dress walks past a shop window full of old clocks and a small dog follows her ."]
    hyps = [*short_ref, "a woman walks ."]  # the short sentences right, the long one truncated
    refs = [*short_ref, *long_ref]
    out = bleu_by_length(hyps, refs, [7, 7, 23])
    assert list(out) == ["1-10", "21-30"]  # empty buckets left out, in increasing length
    assert out["1-10"] == {"n": 2, "bleu": pytest.approx(100.0)}
    assert out["21-30"]["n"] == 1
    assert out["21-30"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps[2:], [long_ref]).score)
    assert out["21-30"]["bleu"] < 10
    with pytest.raises(ValueError, match="3 hypotheses, 3 references, 2 lengths"):
        bleu_by_length(hyps, refs, [7, 7])
    scores = sentence_bleu(hyps, refs)
    assert scores[:2] == [pytest.approx(100.0)] * 2 and scores[2] < 10


def test_tokenized_bleu_follows_the_multi30k_papers_convention() -> None:
    """Lowercased, punctuation-normalised, Moses-tokenised: case and the tokenisation of French
    elisions and quotes no longer count, as in the papers' tables; sacreBLEU still counts them."""
    assert moses_normalise(["L'homme «court» vite."], "fr") == ["l' homme \" court \" vite ."]
    assert moses_normalise(["A dog's ball."], "en") == ["a dog 's ball ."]
    hyps = ["Un homme joue de la guitare.", "L'enfant court sur l'herbe."]
    refs = ["un homme joue de la guitare.", "l'enfant court sur l’herbe."]  # lowercase, a typographic apostrophe
    out = tokenized_bleu(hyps, refs, "fr")
    assert out["bleu_tok"] == pytest.approx(100.0)
    assert sacrebleu_scores(hyps, refs)["bleu"] < 70  # case and the apostrophe count there
    assert "case:lc" in out["bleu_tok_signature"] and out["bleu_tok_signature"].endswith("moses-norm-lc-tok:fr")
    wrong = tokenized_bleu(["Une femme lit un livre."], ["un homme joue de la guitare."], "fr")["bleu_tok"]
    assert wrong < 10
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        tokenized_bleu(hyps[:1], refs, "fr")
    from pydantic import ValidationError

    from mlsp_pipelines.pipelines.seq2seq.params import Seq2SeqReportParams

    with pytest.raises(ValidationError, match="tokenized_bleu"):
        Seq2SeqReportParams(tokenized_bleu="French")


def test_bleu_vs_minutes_plot_draws_a_line_per_model_on_cumulative_minutes() -> None:
    import pandas as pd

    history = pd.DataFrame({"epoch": [1, 2, 3], "val_bleu": [10.0, 20.0, 25.0]})
    fast = {"model": "fast", "epoch_seconds": [60.0, 60.0, 60.0]}
    slow = {"model": "slow", "epoch_seconds": [120.0, 120.0, 120.0]}
    untimed = {"model": "old", "epoch_seconds": []}  # timings of a run from before per-epoch times
    fig = nodes.plot_quality_vs_time(history, fast, history, slow, history, untimed)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {"fast", "slow"}
    assert list(lines["fast"].get_xdata()) == pytest.approx([1, 2, 3])
    assert list(lines["slow"].get_xdata()) == pytest.approx([2, 4, 6])
    assert list(lines["slow"].get_ydata()) == [10.0, 20.0, 25.0]


def test_timings_table_keeps_per_epoch_lists_out() -> None:
    from mlsp_pipelines.modular.report.nodes import collect_timings

    table = collect_timings({"model": "b", "train_seconds": 3.0, "epoch_seconds": [1.0, 2.0]},
                            {"model": "a", "train_seconds": 1.5, "epoch_seconds": [1.5]})
    assert list(table["model"]) == ["a", "b"] and list(table.columns) == ["model", "train_seconds"]


def test_bucketed_training_logs_batches_records_threads_and_is_seeded(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from mlsp_pipelines.params import ModelSpec, TrainParams
    from mlsp_pipelines.pipelines.seq2seq.params import Seq2SeqBatchParams

    raw = nodes.generate_dates(DateSynthParams(n_pairs=200, seed=2))
    pairs, _ = nodes.prepare_corpus(raw, Seq2SeqDataParams(), VocabParams(), Seq2SeqSplitParams())
    model_input = nodes.make_model_input(pairs, nodes.build_vocabularies(pairs, VocabParams()))
    spec = ModelSpec(arch="rnn_seq2seq", kwargs={"embedding_dim": 8, "hidden_size": 8, "attention_size": 8})
    train = TrainParams(epochs=2, batch_size=32, progress=False, log_every=2, num_threads=1, patience=None)
    with caplog.at_level(logging.INFO, logger="mlsp_pipelines.training.loop"):
        bundle, history, seconds = nodes.train_seq2seq(model_input, spec, train, Seq2SeqBatchParams(), None, name="g")
    lines = [r.getMessage() for r in caplog.records if " batch " in r.getMessage()]
    n_batches = -(-len(pairs["train"]["source"]) // 32)
    assert any(f"batch 2/{n_batches}" in m for m in lines) and all("loss" in m and "ETA" in m for m in lines)
    assert bundle["threads"] == 1 and history["train_loss"].iloc[1] < history["train_loss"].iloc[0]
    assert seconds["train_seconds"] > 0 and "train_seconds" not in bundle  # the bundle hashes alike on every re-run
    assert len(seconds["epoch_seconds"]) == 2 and sum(seconds["epoch_seconds"]) == pytest.approx(seconds["train_seconds"])
    again, _, _ = nodes.train_seq2seq(model_input, spec, train, Seq2SeqBatchParams(), None, name="g")
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in bundle["state_dict"].items())
    plain, _, _ = nodes.train_seq2seq(model_input, spec, train, Seq2SeqBatchParams(bucket=False), None, name="g")
    assert not torch.equal(plain["state_dict"]["head.weight"], bundle["state_dict"]["head.weight"])


def test_token_budget_batches_hold_about_the_same_number_of_tokens() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, size=1000)
    batches = bucket_batches(lengths, 32, seed=1, epoch=1, pool=10, max_tokens=400)
    rows = torch.cat(batches).numpy()
    assert sorted(rows.tolist()) == list(range(1000))
    for b in batches:
        ids = b.numpy()
        assert len(ids) * lengths[ids].max() <= 400
    sizes = {int(lengths[b.numpy()].max()): len(b) for b in batches}
    assert sizes[min(sizes)] > 3 * sizes[max(sizes)]  # short rows come in big batches, long rows in small
    again = bucket_batches(lengths, 32, seed=1, epoch=1, pool=10, max_tokens=400)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    # a row longer than the budget still gets a batch of its own
    assert [len(b) for b in bucket_batches(np.array([50, 2]), 32, seed=0, epoch=1, max_tokens=10)] in ([1, 1], [1, 1])


def test_a_shared_vocabulary_serves_both_sides() -> None:
    from mlsp_pipelines.pipelines.seq2seq.nodes import build_vocabularies
    from mlsp_pipelines.pipelines.seq2seq.params import VocabParams

    pairs = {"train": {"source": ["a cat sits", "a dog runs"], "target": ["un chat", "un chien court"]}}
    out = build_vocabularies(pairs, VocabParams(level="word", shared=True))
    assert out["source"] == out["target"]
    assert {"cat", "chat", "chien"} <= set(out["source"]["tokens"])
    apart = build_vocabularies(pairs, VocabParams(level="word"))
    assert "chat" not in apart["source"]["tokens"]


class _PenaltyEcho(torch.nn.Module):
    """A stand-in decoder whose beam output grows with the length penalty: "a b" below 1,
    "a b c d" from 1 on (word level); it records the penalties it was asked for."""

    def __init__(self, vocab: Vocab) -> None:
        super().__init__()
        self.vocab, self.calls = vocab, []

    def generate(self, src: torch.Tensor, *, max_len: int, beam_size: int, length_penalty: float) -> torch.Tensor:
        self.calls.append(length_penalty)
        words = "a b c d" if length_penalty >= 1 else "a b"
        return torch.tensor([self.vocab.encode(words, eos=True)] * len(src))


def test_validation_chooses_the_length_penalty() -> None:
    """A list of length penalties is tried on the validation split (never the test split) and
    the best validation BLEU picks the one decoding uses; one value, or greedy decoding: no search."""
    from mlsp_pipelines.pipelines.seq2seq.nodes import choose_length_penalty, decode
    from mlsp_pipelines.pipelines.seq2seq.params import Seq2SeqReportParams

    vocab = Vocab.build(["a b c d"], level="word")
    refs = ["a b c d"] * 3
    model_input = {"val": (torch.tensor([vocab.encode("a b c d")] * 3),), "texts": {"val": {"target": refs}}}
    net = _PenaltyEcho(vocab)
    report = Seq2SeqReportParams(beam_size=4, length_penalty=[0.6, 1.0, 1.4], batch_size=2)
    best, scores = choose_length_penalty(net, model_input, report, 10, vocab)
    assert best == 1.0  # 1.0 and 1.4 tie at 100: the first
    assert scores["1"] == pytest.approx(100.0) and scores["0.6"] < 50 and set(scores) == {"0.6", "1", "1.4"}
    assert sorted(set(net.calls)) == [0.6, 1.0, 1.4]
    net.calls.clear()
    assert choose_length_penalty(net, model_input, report.with_length_penalty(0.6), 10, vocab) == (0.6, {})
    assert choose_length_penalty(net, model_input, report.model_copy(update={"beam_size": 1}), 10, vocab)[0] == 0.6
    assert net.calls == []
    with pytest.raises(ValueError, match="length_penalty"):
        decode(net, model_input["val"][0], report, 10)  # a list must be narrowed to one value first
    for bad in ([], [0.6, 0.6], -1.0, [1.0, -0.5]):
        with pytest.raises(ValidationError, match="length_penalty"):
            Seq2SeqReportParams(length_penalty=bad)
