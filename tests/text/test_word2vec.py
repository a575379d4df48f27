"""word2vec: tokenisation, sub-sampling, pair generation, negative sampling, models, evaluation, I/O.

Hand-computed cases on tiny corpora with fixed seeds; gensim (the anchor) checks the formulas it
shares with the project (sub-sampling probabilities, the word2vec text format, the evaluations).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DatasetError

from mlsp_pipelines.features import text
from mlsp_pipelines.datasets.text import (
    AnalogyDataset,
    TextCorpus,
    TextCorpusDataset,
    Word2VecTextDataset,
    WordSimDataset,
    split_documents,
)
from mlsp_pipelines.models import build_model, list_models, model_config
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.evaluation import embeddings as ev
from mlsp_pipelines.pipelines.word2vec import nodes
from mlsp_pipelines.pipelines.word2vec.params import (
    BaselineParams,
    EmbeddingParams,
    EvaluationParams,
    TextPreprocessParams,
    Word2VecModelSpec,
    Word2VecTrainParams,
)
from mlsp_pipelines.training import word2vec_sgd as sgd
from mlsp_pipelines.training.loop import fit

torch.set_num_threads(1)


def pairs_of(centre: np.ndarray, context: np.ndarray) -> Counter:
    return Counter(zip(centre.tolist(), context.tolist()))


def reference_pairs(ids: list[int], doc: list[int], spans: list[int]) -> Counter:
    """Brute force: every token within ``spans[i]`` of centre ``i`` in the same document."""
    out: Counter = Counter()
    for i in range(len(ids)):
        for j in range(len(ids)):
            if i != j and abs(i - j) <= spans[i] and doc[i] == doc[j]:
                out[(ids[i], ids[j])] += 1
    return out


# -- tokenisation and vocabulary ---------------------------------------------------------------
def test_tokenize_lowercases_and_keeps_apostrophes() -> None:
    assert text.tokenize("Hello, World! Don't stop in 2024...") == ["hello", "world", "don't", "stop", "in", "2024"]
    assert text.tokenize("A bc DEF", min_length=2) == ["bc", "def"]
    assert text.tokenize("Ab cD", lowercase=False, pattern=r"[A-Za-z]+") == ["Ab", "cD"]


def test_vocabulary_min_count_and_order() -> None:
    docs = [["b", "a", "c", "a"], ["b", "a", "d", "b"], ["e"]]
    v = text.build_vocabulary(docs, min_count=2)
    assert v.words == ("a", "b") and v.counts.tolist() == [3, 3]  # tie broken alphabetically
    assert text.build_vocabulary(docs, min_count=1, max_size=3).words == ("a", "b", "c")
    ids, doc = text.encode(docs, v)
    assert ids.tolist() == [1, 0, 0, 1, 0, 1] and doc.tolist() == [0, 0, 0, 1, 1, 1]  # c, d, e dropped


# -- pairs ---------------------------------------------------------------------------------------
def test_window_one_pairs_are_exactly_the_neighbours() -> None:
    # documents "0 1 2" and "3 4": no pair crosses the boundary between 2 and 3
    ids, doc = np.array([0, 1, 2, 3, 4]), np.array([0, 0, 0, 1, 1])
    c, o = text.skipgram_pairs(ids, doc, 1, text.reduced_windows(5, 1, None))
    assert pairs_of(c, o) == Counter({(0, 1): 1, (1, 0): 1, (1, 2): 1, (2, 1): 1, (3, 4): 1, (4, 3): 1})


def test_window_two_static_pairs_hand_computed() -> None:
    ids, doc = np.array([10, 11, 12, 13]), np.zeros(4, dtype=int)
    c, o = text.skipgram_pairs(ids, doc, 2, text.reduced_windows(4, 2, None))
    expected = {(10, 11), (10, 12), (11, 10), (11, 12), (11, 13), (12, 10), (12, 11), (12, 13), (13, 11), (13, 12)}
    assert pairs_of(c, o) == Counter({p: 1 for p in expected})


def test_dynamic_window_matches_brute_force_and_is_uniform() -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 7, size=60)
    doc = np.repeat(np.arange(6), [5, 15, 1, 20, 9, 10])
    spans = text.reduced_windows(60, 4, np.random.default_rng(0))
    c, o = text.skipgram_pairs(ids, doc, 4, spans)
    assert pairs_of(c, o) == reference_pairs(ids.tolist(), doc.tolist(), spans.tolist())
    many = text.reduced_windows(40_000, 4, np.random.default_rng(1))
    assert set(np.unique(many)) == {1, 2, 3, 4}
    np.testing.assert_allclose(np.bincount(many)[1:] / len(many), 0.25, atol=0.01)


def test_cbow_windows_hold_the_same_contexts_as_the_pairs() -> None:
    ids = np.array([0, 1, 2, 3, 4, 5, 6])
    doc = np.array([0, 0, 0, 0, 1, 1, 2])  # the last document has one word: no CBOW example
    spans = np.array([2, 1, 2, 1, 2, 2, 2])
    ctx, centre = text.cbow_windows(ids, doc, 2, spans, pad=99)
    assert centre.tolist() == [0, 1, 2, 3, 4, 5]
    # columns: left 1, right 1, left 2, right 2
    assert ctx.tolist() == [[99, 1, 99, 2], [0, 2, 99, 99], [1, 3, 0, 99], [2, 99, 99, 99],
                            [99, 5, 99, 99], [4, 99, 99, 99]]
    c, o = text.skipgram_pairs(ids, doc, 2, spans)
    from_ctx = Counter((int(ce), int(x)) for row, ce in zip(ctx, centre) for x in row if x != 99)
    assert from_ctx == pairs_of(c, o)


# -- sub-sampling --------------------------------------------------------------------------------
def test_keep_probabilities_hand_computed() -> None:
    counts = np.array([100, 10, 1])
    t = 0.01 * 111
    expected = [(np.sqrt(100 / t) + 1) * t / 100, (np.sqrt(10 / t) + 1) * t / 10, 1.0]
    np.testing.assert_allclose(text.keep_probabilities(counts, 0.01), expected)
    # t = 1.11: (sqrt(90.09) + 1) · 0.0111 = 0.1164565 and (sqrt(9.009) + 1) · 0.111 = 0.4441667
    np.testing.assert_allclose(expected[:2], [0.1164565, 0.4441667], atol=1e-7)
    np.testing.assert_array_equal(text.keep_probabilities(counts, 0.0), 1.0)


def test_keep_probabilities_match_gensim() -> None:
    from gensim.models import Word2Vec

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    zipf = 1 / np.arange(1, 31)
    sentences = [list(rng.choice(words, size=50, p=zipf / zipf.sum())) for _ in range(40)]
    model = Word2Vec(min_count=1, sample=1e-2, workers=1)
    model.build_vocab(sentences)
    v = text.build_vocabulary(sentences, min_count=1)
    ours = dict(zip(v.words, text.keep_probabilities(v.counts, 1e-2)))
    for w in v.words:
        assert model.wv.get_vecattr(w, "sample_int") / 2**32 == pytest.approx(min(ours[w], 1.0), abs=1e-6)


def test_subsampling_is_seeded_and_follows_the_probabilities() -> None:
    keep = np.array([0.2, 1.0, 0.7])
    ids = np.repeat([0, 1, 2], 20_000)
    m1 = text.subsample(ids, keep, np.random.default_rng(5))
    m2 = text.subsample(ids, keep, np.random.default_rng(5))
    assert np.array_equal(m1, m2)
    np.testing.assert_allclose([m1[ids == k].mean() for k in range(3)], keep, atol=0.01)


def test_make_examples_without_subsampling_keeps_every_token() -> None:
    docs = [["a", "b", "a", "c"], ["b", "a"]]
    v = text.build_vocabulary(docs, min_count=1)
    ids, doc = text.encode(docs, v)
    ex = text.make_examples(ids, doc, v, window=1, sample=0.0, dynamic_window=False, seed=0)
    assert ex.kept.all()
    a, b, c = (v.index[w] for w in "abc")
    # "a b a c" gives a-b, b-a, a-c (both directions); "b a" gives b-a
    assert pairs_of(ex.sg_centre, ex.sg_context) == Counter({(a, b): 3, (b, a): 3, (a, c): 1, (c, a): 1})


# -- negative sampling ---------------------------------------------------------------------------
def test_negatives_follow_unigram_to_the_three_quarters() -> None:
    counts = np.array([500, 120, 60, 20, 5, 1])
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(text.noise_distribution(counts), expected)
    model = build_model("word2vec_sg", in_features=6, out_features=4)
    model.set_noise_distribution(text.noise_distribution(counts))
    torch.testing.assert_close(model.noise_probs, torch.from_numpy(expected))
    torch.manual_seed(0)
    draws = model.sample_negatives(200_000)
    freq = np.bincount(draws.numpy(), minlength=6) / len(draws)
    np.testing.assert_allclose(freq, expected, atol=0.004)
    assert not np.allclose(freq, counts / counts.sum(), atol=0.02)  # not the plain unigram


def test_negative_equal_to_target_is_skipped() -> None:
    model = build_model("word2vec_sg", in_features=2, out_features=3, negative=4)
    model.set_noise_distribution([1.0, 0.0])  # every negative is word 0
    with torch.no_grad():
        model.out_embed.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
    h = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    loss = model.negative_sampling_loss(h, torch.tensor([0, 1]))
    # target 0: its negatives are all 0 → skipped; target 1: four negatives scoring h·u0 = 2
    logsig = torch.nn.functional.logsigmoid
    expected = (-logsig(torch.tensor(2.0)) - logsig(torch.tensor(1.0)) - 4 * logsig(torch.tensor(-2.0))) / 2
    torch.testing.assert_close(loss, expected)


# -- models --------------------------------------------------------------------------------------
def test_models_are_registered_with_vocab_and_dim() -> None:
    assert {"word2vec_sg", "word2vec_cbow"} <= set(list_models())
    sg = build_model("word2vec_sg", in_features=50, out_features=8, negative=3)
    assert sg(torch.tensor([0, 49, 3])).shape == (3, 8)
    assert sg.embeddings().shape == (50, 8)
    cbow = build_model("word2vec_cbow", in_features=50, out_features=8)
    assert cbow.in_embed.weight.shape == (51, 8) and cbow.embeddings().shape == (50, 8)
    with pytest.raises(ValueError, match="negative"):
        model_config("word2vec_sg", negative=0)
    with pytest.raises(ValueError, match="shape"):
        sg(torch.zeros(2, 3, dtype=torch.long))


def test_cbow_averages_the_non_padding_context() -> None:
    cbow = build_model("word2vec_cbow", in_features=5, out_features=3)
    ctx = torch.tensor([[1, 2, 5, 5], [4, 5, 5, 5]])
    out = cbow(ctx)
    w = cbow.in_embed.weight
    torch.testing.assert_close(out[0], (w[1] + w[2]) / 2)
    torch.testing.assert_close(out[1], w[4])
    out.sum().backward()
    assert cbow.in_embed.weight.grad[5].abs().sum() == 0  # padding row never learns


@pytest.fixture(scope="module")
def lee_data() -> dict:
    """The bundled Lee corpus, preprocessed with small settings."""
    corpus = TextCorpusDataset().load()
    params = TextPreprocessParams(min_count=5, window=3, seed=0)
    data, vocab, stats = nodes.preprocess_corpus(corpus[:120], params)
    assert stats["vocab_size"] == len(vocab) == len(data["words"])
    return data


def test_shared_loop_still_trains_the_registry_modules(lee_data: dict) -> None:
    """The modules keep their autograd loss for the shared loop (the pipeline uses word2vec's SGD)."""
    ids, doc = lee_data["ids"], lee_data["doc"]
    ex = text.make_examples(ids, doc, text.Vocabulary(tuple(lee_data["words"]), lee_data["counts"]), window=3,
                            sample=1e-3, seed=0)
    tr = (torch.from_numpy(ex.sg_centre[:6000]), torch.from_numpy(ex.sg_context[:6000]))
    m = build_model("word2vec_sg", in_features=len(lee_data["words"]), out_features=8, sparse=True)
    m.set_noise_distribution(lee_data["noise"])
    params = TrainParams(epochs=3, batch_size=1024, lr=0.01, patience=None, progress=False, grad_clip=None,
                         optimizer="sparse_adam", num_threads=1)
    res = fit(m, tr, None, params=params, task="regression", loss_fn=m.negative_sampling_loss)
    assert np.all(np.diff(res.history["train_loss"]) < 0), res.history["train_loss"]


# -- word2vec's SGD (numba kernel, torch engine) --------------------------------------------------
M64 = (1 << 64) - 1


class _Xorshift:
    """The kernel's negative-sampling stream (xorshift64*), in plain Python."""

    def __init__(self, seed: int) -> None:
        self.x = seed & M64

    def negative(self, accept: np.ndarray, alias: np.ndarray) -> int:
        x = self.x
        x ^= x >> 12
        x = (x ^ (x << 25)) & M64
        x ^= x >> 27
        self.x = x
        r = (x * 2685821657736338717) & M64
        k = (r >> 32) % len(accept)
        return int(k) if (r & 0xFFFFFFFF) / 4294967296.0 < accept[k] else int(alias[k])


def _reference_epoch(kind: str, ids, doc, spans, syn0, syn1, accept, alias, negative, a0, a1, seed):
    """word2vec's updates written out plainly (float64), one centre at a time (gensim's order)."""
    rng = _Xorshift(seed)
    n, loss = len(ids), 0.0

    def unit(h, target, label, alpha, neu1e):
        f = float(np.clip(h @ syn1[target], -30, 30))
        sig = 1 / (1 + np.exp(-f))
        g = (label - sig) * alpha
        neu1e += g * syn1[target]
        syn1[target] += g * h
        return -np.log(sig) if label else -np.log(1 - sig)

    for i in range(n):
        alpha = a0 + (a1 - a0) * i / n
        window = [j for j in range(max(i - spans[i], 0), min(i + spans[i] + 1, n)) if j != i and doc[j] == doc[i]]
        if kind == "sg":
            for j in window:
                h, neu1e = syn0[ids[j]].copy(), np.zeros(syn0.shape[1])
                loss += unit(h, ids[i], 1, alpha, neu1e)
                for _ in range(negative):
                    t = rng.negative(accept, alias)
                    if t != ids[i]:
                        loss += unit(h, t, 0, alpha, neu1e)
                syn0[ids[j]] += neu1e
        elif window:
            h, neu1e = syn0[[ids[j] for j in window]].mean(0), np.zeros(syn0.shape[1])
            loss += unit(h, ids[i], 1, alpha, neu1e)
            for _ in range(negative):
                t = rng.negative(accept, alias)
                if t != ids[i]:
                    loss += unit(h, t, 0, alpha, neu1e)
            for j in window:
                syn0[ids[j]] += neu1e
    return loss


@pytest.mark.parametrize("kind", ["sg", "cbow"])
def test_numba_kernel_matches_a_plain_reference(kind: str) -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 7, size=40)
    doc = np.repeat([0, 1, 2], [15, 1, 24])
    spans = rng.integers(1, 4, size=40)
    accept, alias = sgd.alias_table(text.noise_distribution(np.array([40, 20, 10, 5, 5, 2, 1])))
    syn0 = rng.normal(0, 0.3, size=(7, 5)).astype(np.float32)
    syn1 = rng.normal(0, 0.3, size=(7, 5)).astype(np.float32)
    ref0, ref1 = syn0.astype(np.float64), syn1.astype(np.float64)
    ref_loss = _reference_epoch(kind, ids, doc, spans, ref0, ref1, accept, alias, 3, 0.5, 0.1, 12345)
    kernel = sgd._compile()[kind]
    loss, n = kernel(ids, doc, spans, syn0, syn1, accept, alias, 3, 0.5, 0.1, np.uint64(12345), True)
    np.testing.assert_allclose(syn0, ref0, atol=2e-5)
    np.testing.assert_allclose(syn1, ref1, atol=2e-5)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert n == (sum(1 for i in range(40) for j in range(40) if 0 < abs(i - j) <= spans[i] and doc[i] == doc[j])
                 if kind == "sg" else 39)  # cbow: every centre but the one-word document


def test_alias_table_samples_the_noise_distribution_exactly() -> None:
    probs = text.noise_distribution(np.array([500, 120, 60, 20, 5, 1, 1]))
    accept, alias = sgd.alias_table(probs)
    np.testing.assert_allclose(sgd.alias_probabilities(accept, alias), probs, rtol=1e-12)
    stream = _Xorshift(99)
    draws = np.bincount([stream.negative(accept, alias) for _ in range(60_000)], minlength=7) / 60_000
    np.testing.assert_allclose(draws, probs, atol=0.006)
    with pytest.raises(ValueError):
        sgd.alias_table(np.array([0.0, 0.0]))


def test_every_epoch_draws_its_own_examples() -> None:
    ids = np.arange(2000) % 50
    doc = np.repeat(np.arange(20), 100)
    keep = np.full(50, 0.7)
    e1 = sgd.draw_epoch(ids, doc, keep, 5, True, seed=4, epoch=1)
    again = sgd.draw_epoch(ids, doc, keep, 5, True, seed=4, epoch=1)
    e2 = sgd.draw_epoch(ids, doc, keep, 5, True, seed=4, epoch=2)
    assert all(np.array_equal(a, b) for a, b in zip(e1[:3], again[:3])) and e1[3] == again[3]
    assert len(e1[0]) != len(e2[0]) or not np.array_equal(e1[0], e2[0])  # another sub-sample
    assert e1[3] != e2[3]  # another negative stream
    assert 0.65 < len(e1[0]) / 2000 < 0.75 and set(np.unique(e1[2])) == {1, 2, 3, 4, 5}


def _w2v_spec(kind: str, **train: object) -> Word2VecModelSpec:
    return Word2VecModelSpec(arch=f"word2vec_{kind}", kwargs={"negative": 3}, train=dict(train))


@pytest.mark.parametrize("kind", ["sg", "cbow"])
def test_sgd_training_learns_and_is_seeded(lee_data: dict, kind: str) -> None:
    train = Word2VecTrainParams(epochs=3, progress=False)
    bundle, history, timings = nodes.train_word2vec(lee_data, _w2v_spec(kind), train, EmbeddingParams(dim=16), None, name=kind)
    loss = history["train_loss"].to_numpy()
    assert len(loss) == 3 and np.all(np.diff(loss) < 0), loss
    assert bundle["epochs_run"] == 3 and bundle["engine"] == "numba"
    assert timings["words_per_second"] > 0 and timings["model"] == bundle["name"] == kind and timings["kind"] == kind
    assert not {"words_per_second", "train_seconds", "compile_seconds"} & set(bundle)  # hashes alike on re-runs
    again, _, _ = nodes.train_word2vec(lee_data, _w2v_spec(kind), train, EmbeddingParams(dim=16), None, name=kind)
    for k, v in bundle["state_dict"].items():  # seeded: the same weights again
        assert torch.equal(v, again["state_dict"][k]), k
    other, _, _ = nodes.train_word2vec(lee_data, _w2v_spec(kind, seed=1), train, EmbeddingParams(dim=16), None, name=kind)
    assert not torch.equal(other["state_dict"]["in_embed.weight"], bundle["state_dict"]["in_embed.weight"])


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_sgd_resumes_exactly_after_an_interruption(tmp_path: Path, lee_data: dict, engine: str) -> None:
    from mlsp_pipelines.datasets.files import CheckpointStore

    args = (lee_data["ids"], lee_data["doc"], lee_data["keep_prob"], lee_data["noise"])
    settings = sgd.SGDSettings(kind="sg", dim=8, window=3, negative=2, epochs=3, engine=engine, batch_pairs=512)
    straight = sgd.train(*args, settings)

    def interrupt(epoch: int, row: dict) -> None:
        if epoch == 3:  # dies during epoch 3: the checkpoint holds epoch 2
            raise KeyboardInterrupt

    store = CheckpointStore(tmp_path / "w.ckpt")
    with pytest.raises(KeyboardInterrupt):
        sgd.train(*args, settings, checkpoint=store, config_hash="h", callbacks=(interrupt,))
    assert torch.load(store.path, weights_only=True)["epoch"] == 2
    resumed = sgd.train(*args, settings, checkpoint=store, config_hash="h")
    assert resumed.resumed_from == 2 and len(resumed.history["train_loss"]) == 3 and not store.path.exists()
    np.testing.assert_array_equal(resumed.syn0, straight.syn0)
    np.testing.assert_array_equal(resumed.syn1, straight.syn1)
    assert resumed.history["train_loss"] == straight.history["train_loss"]


@pytest.mark.parametrize("kind", ["sg", "cbow"])
def test_torch_engine_learns_like_the_kernel(lee_data: dict, kind: str) -> None:
    emb = EmbeddingParams(dim=16)
    losses = {}
    for engine in ("numba", "torch"):
        train = Word2VecTrainParams(epochs=4, progress=False, engine=engine, batch_pairs=256)
        bundle, history, _ = nodes.train_word2vec(lee_data, _w2v_spec(kind), train, emb, None, name=kind)
        losses[engine] = history["train_loss"].to_numpy()
        assert bundle["engine"] == engine
    assert losses["torch"][-1] < losses["torch"][0] - 0.03  # it learns (CBOW starts slowly here) ...
    np.testing.assert_allclose(losses["torch"], losses["numba"], rtol=0.01)  # ... at the kernel's pace


# -- datasets ------------------------------------------------------------------------------------
def test_default_corpus_and_benchmarks_come_from_gensim() -> None:
    corpus = TextCorpusDataset(filepath=None).load()
    assert isinstance(corpus, TextCorpus) and len(corpus) == 300 and corpus.source.endswith("lee_background.cor")
    ws = WordSimDataset().load()
    assert list(ws.columns) == ["word1", "word2", "score"] and len(ws) == 353
    an = AnalogyDataset(filepath="").load()
    assert len(an) == 19544 and an["section"].nunique() == 14


def test_corpus_layouts(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text("First para\nwraps here.\n\n\nSecond one.\n  \nThird\n", encoding="utf-8")
    assert TextCorpusDataset(filepath=str(path), layout="paragraphs").load() == [
        "First para wraps here.", "Second one.", "Third"]
    assert TextCorpusDataset(filepath=str(path)).load() == ["First para", "wraps here.", "Second one.", "Third"]
    assert split_documents("a\r\nb\r\n", "lines") == ["a", "b"]


def test_empty_corpus_error_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty corpus.txt"
    empty.write_text("\n   \n\t\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="empty") as err:
        TextCorpusDataset(filepath=str(empty)).load()
    assert str(empty) in str(err.value)
    missing = tmp_path / "nope.txt"
    with pytest.raises(DatasetError, match="not found") as err:
        TextCorpusDataset(filepath=str(missing)).load()
    assert str(missing) in str(err.value) and "corpus_path" in str(err.value)


def test_corpus_without_enough_words_names_the_source(tmp_path: Path) -> None:
    corpus = TextCorpus(["alpha beta", "gamma"], source=str(tmp_path / "tiny.txt"))
    with pytest.raises(ValueError, match="min_count") as err:
        nodes.preprocess_corpus(corpus, TextPreprocessParams(min_count=2))
    assert "tiny.txt" in str(err.value)
    with pytest.raises(ValueError, match="no tokens"):
        nodes.preprocess_corpus(TextCorpus(["!!! ???"], "punct.txt"), TextPreprocessParams())


def test_embeddings_round_trip_through_gensim(tmp_path: Path) -> None:
    from gensim.models import KeyedVectors

    words = ["the", "cat", "sat", "naïve", "don't"]
    vectors = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    ds = Word2VecTextDataset(filepath=str(tmp_path / "v.txt"))
    ds.save({"words": words, "vectors": vectors})
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v.txt"), binary=False)
    assert kv.index_to_key == words
    np.testing.assert_allclose(kv.vectors, vectors, rtol=1e-5, atol=1e-6)
    back = ds.load()
    assert back["words"] == words and np.allclose(back["vectors"], vectors, rtol=1e-5, atol=1e-6)
    ds.save(kv)  # a KeyedVectors object is accepted too
    assert ds.load()["words"] == words
    with pytest.raises(DatasetError, match="whitespace"):
        ds.save({"words": ["a b"], "vectors": vectors[:1]})


def test_export_of_a_trained_model_loads_in_gensim_and_torch(tmp_path: Path, lee_data: dict) -> None:
    from gensim.models import KeyedVectors

    from mlsp_pipelines.datasets.files import TorchDataset

    spec = Word2VecModelSpec(arch="word2vec_sg", kwargs={"negative": 2})
    bundle, _, _ = nodes.train_word2vec(lee_data, spec, Word2VecTrainParams(epochs=1, progress=False),
                                        EmbeddingParams(dim=8), None, name="sg")
    emb, txt = nodes.export_embeddings(bundle)
    Word2VecTextDataset(filepath=str(tmp_path / "sg.vec.txt")).save(txt)
    TorchDataset(filepath=str(tmp_path / "sg.pt")).save(emb)
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "sg.vec.txt"))
    loaded = TorchDataset(filepath=str(tmp_path / "sg.pt")).load()
    assert kv.index_to_key == loaded["words"] == bundle["words"]
    layer = torch.nn.Embedding.from_pretrained(loaded["vectors"])
    i = loaded["words"].index("police")
    np.testing.assert_allclose(kv["police"], layer(torch.tensor(i)).numpy(), rtol=1e-5, atol=1e-6)


# -- evaluation ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_vectors() -> tuple[list[str], np.ndarray]:
    """Random vectors for the WordSim353 and capital-city words (so both benchmarks have hits)."""
    ws = WordSimDataset().load()
    an = AnalogyDataset().load()
    an = an[an["section"].isin(["capital-common-countries", "gram1-adjective-to-adverb"])]
    analogy_words = set(an[["a", "b", "c", "d"]].to_numpy().ravel().tolist())
    words = sorted(analogy_words | set(sorted(set(ws["word1"]) | set(ws["word2"]))[::2]))
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(len(words), 6))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    # plant some exact answers: d = b - a + c (unit a, b, c) for a few capital questions
    idx = {w: i for i, w in enumerate(words)}
    for a, b, c, d in an[["a", "b", "c", "d"]].to_numpy()[:40:4]:
        vecs[idx[d]] = vecs[idx[b]] - vecs[idx[a]] + vecs[idx[c]]
    vecs = vecs.astype(np.float32)
    return words, vecs


def test_word_pair_spearman_matches_gensim(random_vectors: tuple[list[str], np.ndarray]) -> None:
    from gensim.models import KeyedVectors

    from mlsp_pipelines.datasets.text import gensim_test_file

    words, vecs = random_vectors
    kv = KeyedVectors(vecs.shape[1])
    kv.add_vectors(words, vecs)
    pearson, spearman, oov = kv.evaluate_word_pairs(str(gensim_test_file("wordsim353.tsv")))
    ours = ev.word_pair_spearman(words, vecs, WordSimDataset().load())
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert ours["pairs_oov"] / ours["pairs"] * 100 == pytest.approx(oov)
    assert ours["pairs_used"] + ours["pairs_oov"] == 353


def test_analogy_accuracy_matches_gensim(random_vectors: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    from gensim.models import KeyedVectors

    words, vecs = random_vectors
    an = AnalogyDataset().load()
    an = an[an["section"].isin(["capital-common-countries", "gram1-adjective-to-adverb"])]
    path = tmp_path / "q.txt"
    path.write_text("".join(f": {s}\n" + "".join(f"{a} {b} {c} {d}\n" for _, a, b, c, d in g.itertuples(index=False))
                            for s, g in an.groupby("section", sort=False)), encoding="utf-8")
    kv = KeyedVectors(vecs.shape[1])
    kv.add_vectors(words, vecs)
    score, sections = kv.evaluate_word_analogies(str(path))
    ours = ev.analogy_accuracy(words, vecs, an, restrict_vocab=None)
    total = sections[-1]
    assert ours["correct"] == len(total["correct"]) > 0
    assert ours["questions_used"] == len(total["correct"]) + len(total["incorrect"])
    assert ours["accuracy"] == pytest.approx(score)
    assert ours["semantic_accuracy"] is not None and ours["questions"] == len(an)


def test_neighbours_and_projection(random_vectors: tuple[list[str], np.ndarray]) -> None:
    words, vecs = random_vectors
    table, missing = ev.nearest_neighbours(words, vecs, [words[0], "zzznotaword"], k=3)
    assert missing == ["zzznotaword"] and table["rank"].tolist() == [1, 2, 3]
    assert words[0] not in table["neighbour"].tolist()
    assert table["cosine"].is_monotonic_decreasing
    xy, var = ev.pca_2d(vecs)
    assert xy.shape == (len(words), 2) and var[0] >= var[1] > 0
    fig = ev.projection_figure(words, vecs, np.arange(len(words))[::-1], n=10, skip=2)
    assert len(fig.axes[0].texts) == 10


def test_reports_put_quality_and_speed_apart() -> None:
    """Rows are model entries, not architectures: two skip-gram entries are two rows, each compared
    with the gensim anchor of its kind."""
    base = {"wordsim_pairs_used": 100, "wordsim_pairs_oov": 253, "analogy_accuracy": 0.1, "analogy_questions_used": 50,
            "epochs_run": 5, "threads": 1, "vocab_size": 10, "dim": 4, "params": 80}
    board, md, fig, summary = nodes.build_report(
        {**base, "model": "sg", "kind": "sg", "spearman": 0.30},
        {**base, "model": "sg_wide", "kind": "sg", "spearman": 0.25},
        {**base, "model": "gensim_sg", "kind": "sg", "spearman": 0.20},
        {**base, "model": "cbow", "kind": "cbow", "spearman": None},
    )
    assert board["model"].tolist() == ["sg", "sg_wide", "gensim_sg", "cbow"]
    assert "spearman" in board and "| sg_wide | sg |" in md
    assert not {"words_per_second", "train_seconds"} & set(board.columns)  # the board hashes alike on re-runs
    assert summary["sg_vs_anchor"] == {"anchor": "gensim_sg", "spearman_minus_anchor": 0.1}
    assert summary["sg_wide_vs_anchor"] == {"anchor": "gensim_sg", "spearman_minus_anchor": 0.05}
    assert "cbow_vs_anchor" not in summary and "gensim_sg_vs_anchor" not in summary  # no gensim CBOW anchor
    assert len(fig.axes) == 2  # Spearman, analogies

    speed, speed_fig = nodes.build_speed_report(
        {"model": "sg", "kind": "sg", "words_per_second": 1000.0, "train_seconds": 2.0, "engine": "numba", "threads": 1},
        {"model": "gensim_sg", "kind": "sg", "words_per_second": 4000.0, "train_seconds": 0.5, "engine": "gensim",
         "threads": 1},
        {"model": "cbow", "kind": "cbow", "words_per_second": 2000.0, "train_seconds": 1.0, "engine": "numba",
         "threads": 1},
    )
    assert speed["model"].tolist() == ["gensim_sg", "cbow", "sg"]  # fastest first
    ratio = dict(zip(speed["model"], speed["speed_ratio_to_anchor"]))
    assert ratio["sg"] == 0.25 and pd.isna(ratio["cbow"]) and pd.isna(ratio["gensim_sg"])
    assert len(speed_fig.axes) == 1


@pytest.mark.parametrize("kind", ["sg", "cbow"])
def test_gensim_anchor_uses_the_same_vocabulary(lee_data: dict, kind: str) -> None:
    spec = Word2VecModelSpec(arch=f"word2vec_{kind}", kwargs={"negative": 2})
    train = Word2VecTrainParams(epochs=1, progress=False)
    pre = TextPreprocessParams(min_count=5, window=3)
    emb, _, timings = nodes.train_gensim(lee_data, spec, train, EmbeddingParams(dim=8), pre, BaselineParams())
    assert emb["model"] == f"gensim_{kind}" and emb["kind"] == kind
    assert sorted(emb["words"]) == sorted(str(w) for w in lee_data["words"])
    assert int(emb["counts"].sum()) == int(np.asarray(lee_data["counts"]).sum())
    assert emb["stats"]["threads"] == 1 and timings["words_per_second"] > 0 and timings["model"] == emb["model"]
    assert "words_per_second" not in emb["stats"]  # the embeddings file hashes alike on re-runs
    again, _, _ = nodes.train_gensim(lee_data, spec, train, EmbeddingParams(dim=8), pre, BaselineParams())
    assert torch.equal(emb["vectors"], again["vectors"])  # workers=1 and a stable hash: reproducible


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="token_pattern"):
        TextPreprocessParams(token_pattern="[a-")
    with pytest.raises(ValueError):
        TextPreprocessParams(min_cont=3)  # typo'd key
    with pytest.raises(ValueError):
        EvaluationParams(n_neighbours=0)
    with pytest.raises(ValueError, match="min_alpha"):
        Word2VecTrainParams(alpha=0.01, min_alpha=0.1)
    with pytest.raises(ValueError, match="lr"):
        Word2VecModelSpec(arch="word2vec_sg", train={"lr": 0.1})  # a loop setting, not word2vec's
    with pytest.raises(ValueError):
        Word2VecModelSpec(arch="cnn")


def test_default_pipeline_has_a_gensim_anchor_per_kind() -> None:
    import yaml

    from mlsp_pipelines.pipelines.word2vec.pipeline import create_pipelines

    conf = yaml.safe_load((Path(__file__).resolve().parents[2] / "conf/base/parameters_word2vec.yml").read_text())
    names = {n.name for n in create_pipelines(conf)["word2vec"].nodes}
    assert {"word2vec.gensim_sg.train_gensim", "word2vec.gensim_cbow.train_gensim"} <= names
    conf["word2vec"]["baseline"]["kinds"] = ["cbow"]
    conf["word2vec"]["models"].pop("cbow")
    conf["word2vec"]["architectures"] = ["sg"]
    with pytest.raises(ValueError, match="no word2vec.models entry has arch word2vec_cbow"):
        create_pipelines(conf)
