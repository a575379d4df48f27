"""The project's word2vec (skip-gram and CBOW) against gensim's ``Word2Vec``: words/second,
WordSim353 Spearman ρ and analogy accuracy, one thread each.

Same tokens and vocabulary, same hyper-parameters (``conf/base/parameters_word2vec.yml``:
dimension, window, min_count, sample, negatives, noise exponent, epochs, alpha → min_alpha),
one thread each (the project's numba kernel is single-threaded; gensim ``workers=1``). For each
seed the four models train alternately (project SG, gensim SG, project CBOW, gensim CBOW), so
drift in machine load hits both sides; quality is the mean over the seeds (the Lee corpus is
small and ρ moves by a few hundredths from seed to seed), speed the median words/second.

words/second = in-vocabulary corpus tokens × epochs / training seconds (both sides sample
their examples inside the timed part; the project's one-off kernel compilation is excluded).

Corpora need no download: ``lee`` is gensim's bundled Lee corpus (60k tokens); ``big`` adds
gensim's ``head500.noblanks.cor`` (330k tokens of stemmed Wikipedia text, useful for stable
timings; WordSim/analogy words are mostly absent from it). ``--profile-loop`` first breaks down
one batch of the former path (registry module + shared loop + SparseAdam).

Run: ``python benchmarks/word2vec.py [--corpus lee|big|FILE] [--seeds 0 1 2] [--epochs 10] [--profile-loop]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from mlsp_pipelines.datasets.text import AnalogyDataset, TextCorpus, TextCorpusDataset, WordSimDataset, gensim_test_file
from mlsp_pipelines.pipelines.word2vec import nodes
from mlsp_pipelines.pipelines.word2vec.params import (
    BaselineParams,
    EmbeddingParams,
    EvaluationParams,
    TextPreprocessParams,
    Word2VecModelSpec,
    Word2VecTrainParams,
)

ROOT = Path(__file__).resolve().parents[1]


def load_corpus(name: str) -> TextCorpus:
    if name == "lee":
        return TextCorpusDataset().load()
    if name == "big":
        docs = [*TextCorpusDataset().load(), *TextCorpusDataset(filepath=str(gensim_test_file("head500.noblanks.cor"))).load()]
        return TextCorpus(docs, "lee_background.cor + head500.noblanks.cor")
    return TextCorpusDataset(filepath=name).load()


def profile_loop(data: dict, dim: int, negative: int, batch: int = 1024, steps: int = 60) -> None:
    """Where one batch of the former path (autograd + SparseAdam) spends its time."""
    from mlsp_pipelines.features import text
    from mlsp_pipelines.models import build_model

    vocab = text.Vocabulary(tuple(data["words"]), data["counts"])
    ex = text.make_examples(data["ids"], data["doc"], vocab, window=int(data["window"]), sample=1e-3, seed=0)
    centre, context = torch.from_numpy(ex.sg_centre), torch.from_numpy(ex.sg_context)
    net = build_model("word2vec_sg", in_features=len(vocab), out_features=dim, negative=negative, sparse=True)
    net.set_noise_distribution(data["noise"])
    opt = torch.optim.SparseAdam(list(net.parameters()), lr=0.002)
    parts = dict.fromkeys(("negatives (searchsorted)", "forward + loss", "backward", "SparseAdam step",
                           "batch slicing (Python path)"), 0.0)
    order = torch.randperm(len(centre))
    for s in range(steps):
        t0 = time.perf_counter()
        idx = order[s * batch : (s + 1) * batch]
        c, o = centre[idx], context[idx]
        t1 = time.perf_counter()
        net.sample_negatives(batch * negative)
        t2 = time.perf_counter()
        loss = net.negative_sampling_loss(net(c), o)  # draws its own negatives again (counted in forward)
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        for k, dt in zip(parts, (t2 - t1, t3 - t2, t4 - t3, t5 - t4, t1 - t0)):
            parts[k] += dt
    total = sum(parts.values()) - parts["negatives (searchsorted)"]
    print(f"\nformer path, one batch of {batch} skip-gram pairs (dim {dim}, {negative} negatives), mean of {steps}:")
    for k, v in parts.items():
        print(f"  {k:<30} {1000 * v / steps:7.2f} ms  ({100 * v / total:4.1f}% of a batch)")
    print(f"  → {batch * steps / total:,.0f} pairs/s; the numba kernel's rate is printed below for comparison")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="lee", help="lee | big | a file with one document per line")
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--profile-loop", action="store_true")
    args = ap.parse_args()
    os.environ["MLSP_PROGRESS"] = "0"
    torch.set_num_threads(1)

    conf = yaml.safe_load((ROOT / "conf" / "base" / "parameters_word2vec.yml").read_text())["word2vec"]
    pre = TextPreprocessParams(**conf["preprocess"])
    emb = EmbeddingParams(**conf["embedding"])
    base = Word2VecTrainParams(**{**conf["train"], "progress": False, "engine": "numba", "device": "cpu",
                                  **({"epochs": args.epochs} if args.epochs else {})})
    baseline = BaselineParams(**{**conf["baseline"], "workers": 1})
    specs = {k: Word2VecModelSpec(**conf["models"][k]) for k in ("sg", "cbow")}
    evaluation = EvaluationParams(**conf["evaluation"])

    corpus = load_corpus(args.corpus)
    wordsim, analogies = WordSimDataset().load(), AnalogyDataset().load()
    data, _, stats = nodes.preprocess_corpus(corpus, pre)
    print(f"corpus {stats['source']}: {stats['documents']} documents, {stats['tokens']} tokens, vocabulary "
          f"{stats['vocab_size']} (min_count {pre.min_count}), {stats['in_vocab_tokens']} in-vocabulary tokens; "
          f"dim {emb.dim}, window {pre.window}, negative {specs['sg'].kwargs.get('negative', 5)}, sample {pre.sample}, "
          f"epochs {base.epochs}, alpha {base.alpha}→{base.min_alpha}; 1 thread each; load {os.getloadavg()[0]:.2f}")
    if args.profile_loop:
        profile_loop(data, emb.dim, int(specs["sg"].kwargs.get("negative", 5)))

    wps: dict[str, list[float]] = {}
    rho: dict[str, list[float]] = {}
    ana: dict[str, list[float]] = {}
    compile_s = []
    for seed in args.seeds:
        train = Word2VecTrainParams(**{**base.model_dump(), "seed": seed})
        for kind, spec in specs.items():
            bundle, _, timing = nodes.train_word2vec(data, spec, train, emb, None, name=kind)
            compile_s.append(timing["compile_seconds"])
            project, _ = nodes.export_embeddings(bundle)
            anchor, _, anchor_timing = nodes.train_gensim(data, spec, train, emb, pre, baseline)
            for name, vectors, t in ((f"project_{kind}", project, timing), (f"gensim_{kind}", anchor, anchor_timing)):
                q = nodes.evaluate_embeddings(vectors, wordsim, analogies, evaluation)[0]
                wps.setdefault(name, []).append(t["words_per_second"])
                rho.setdefault(name, []).append(q["spearman"] if q["spearman"] is not None else float("nan"))
                ana.setdefault(name, []).append(q["analogy_accuracy"] or 0.0)
                print(f"  seed {seed} {name:<13} ρ {rho[name][-1]:.3f}  analogies {ana[name][-1]:.4f} "
                      f"({q['analogy_questions_used']} asked)  {wps[name][-1]:,.0f} words/s", flush=True)

    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}; kernel compilation (first call, then cached): "
          f"{max(compile_s):.2f} s\n")
    print("| model | WordSim353 ρ (mean over seeds) | per seed | analogy acc. (mean) | words/s (median) | × gensim |")
    print("|---|---|---|---|---|---|")
    for kind in specs:
        for name in (f"project_{kind}", f"gensim_{kind}"):
            ratio = statistics.median(wps[name]) / statistics.median(wps[f"gensim_{kind}"])
            print(f"| {name} | {np.mean(rho[name]):.3f} | {' '.join(f'{r:.3f}' for r in rho[name])} | "
                  f"{np.mean(ana[name]):.4f} | {statistics.median(wps[name]):,.0f} | {ratio:.2f} |")
    for kind in specs:
        p, g = f"project_{kind}", f"gensim_{kind}"
        print(f"{kind}: speed {statistics.median(wps[p]) / statistics.median(wps[g]):.2f}× gensim "
              f"(per-seed ratios {', '.join(f'{a / b:.2f}' for a, b in zip(wps[p], wps[g]))}); "
              f"ρ − gensim's = {np.mean(rho[p]) - np.mean(rho[g]):+.3f}")


if __name__ == "__main__":
    main()
