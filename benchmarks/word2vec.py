"""Skip-gram of the project against gensim's ``Word2Vec``: training words/second and WordSim353 Spearman.

Same corpus (gensim's bundled Lee corpus unless ``--corpus``), same tokens and vocabulary, same
hyper-parameters (``conf/base/parameters_word2vec.yml``: dimension, window, min_count, sample,
negatives, noise exponent, epochs, seed), one thread each (torch ``num_threads=1``, gensim
``workers=1``). The project's model trains with the shared loop (AdamW, per-batch negatives,
one sampling of pairs reused every epoch); gensim with its own SGD (linearly decaying alpha).
Runs alternate (project, gensim, project, ...) so drift in machine load hits both; the table
gives the median words/second over ``--repeats`` and the Spearman ρ of the last run.

words/second = in-vocabulary corpus tokens × epochs / training seconds (for the project, the
one-off pair sampling is included; for gensim, ``train`` only, which samples internally).

Run: ``python benchmarks/word2vec.py [--epochs 10 30] [--repeats 2] [--cbow] [--corpus file.txt]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
import yaml

from mlsp_pipelines.ingestion.text import AnalogyDataset, TextCorpusDataset, WordSimDataset
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.pipelines.word2vec import nodes
from mlsp_pipelines.pipelines.word2vec.params import (
    BaselineParams,
    EmbeddingParams,
    EvaluationParams,
    TextPreprocessParams,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="one document per line (default: gensim's Lee corpus)")
    ap.add_argument("--epochs", type=int, nargs="+", default=None, help="epoch settings (default: the config's)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cbow", action="store_true", help="also time the project's CBOW")
    args = ap.parse_args()
    os.environ["MLSP_PROGRESS"] = "0"
    torch.set_num_threads(1)

    conf = yaml.safe_load((ROOT / "conf" / "base" / "parameters_word2vec.yml").read_text())["word2vec"]
    pre = TextPreprocessParams(**conf["preprocess"])
    emb = EmbeddingParams(**conf["embedding"])
    base_train = TrainParams(**{**conf["train"], "progress": False, "num_threads": 1})
    baseline = BaselineParams(**{**conf["baseline"], "workers": 1, "sg": 1})
    specs = {"word2vec_sg": ModelSpec(**conf["models"]["sg"])}
    if args.cbow:
        specs["word2vec_cbow"] = ModelSpec(**conf["models"]["cbow"])
    evaluation = EvaluationParams(**conf["evaluation"])

    corpus = TextCorpusDataset(filepath=args.corpus).load()
    wordsim, analogies = WordSimDataset().load(), AnalogyDataset().load()
    data, _, stats = nodes.preprocess_corpus(corpus, pre)
    print(f"corpus {stats['source']}: {stats['documents']} documents, {stats['tokens']} tokens, "
          f"vocabulary {stats['vocab_size']} (min_count {pre.min_count}), {stats['in_vocab_tokens']} in-vocabulary "
          f"tokens, {stats['skipgram_pairs']} skip-gram pairs; dim {emb.dim}, window {pre.window}, "
          f"negative {specs['word2vec_sg'].kwargs.get('negative', 5)}, sample {pre.sample}; 1 thread each")

    rows = []
    for epochs in args.epochs or [base_train.epochs]:
        train = TrainParams(**{**base_train.model_dump(), "epochs": epochs})
        wps: dict[str, list[float]] = {}
        quality: dict[str, dict] = {}
        for rep in range(args.repeats):
            for name, spec in specs.items():
                bundle, _ = nodes.train_word2vec(data, spec, train, emb, None)
                vectors, _ = nodes.export_embeddings(bundle)
                wps.setdefault(name, []).append(bundle["words_per_second"])
                if rep == args.repeats - 1:
                    quality[name] = nodes.evaluate_embeddings(vectors, wordsim, analogies, evaluation)[0]
            vectors, _ = nodes.train_gensim(data, specs["word2vec_sg"], train, emb, pre, baseline)
            wps.setdefault("gensim_sg", []).append(vectors["stats"]["words_per_second"])
            if rep == args.repeats - 1:
                quality["gensim_sg"] = nodes.evaluate_embeddings(vectors, wordsim, analogies, evaluation)[0]
        for name in [*specs, "gensim_sg"]:
            q = quality[name]
            rows.append((epochs, name, q["spearman"], q["wordsim_pairs_used"], q["analogy_accuracy"],
                         statistics.median(wps[name]), len(wps[name])))

    print()
    print("| epochs | model | WordSim353 Spearman | pairs used | analogy acc. | words/s (median) | runs |")
    print("|---|---|---|---|---|---|---|")
    for epochs, name, sp, used, an, w, n in rows:
        print(f"| {epochs} | {name} | {'n/a' if sp is None else f'{sp:.3f}'} | {used}/353 | "
              f"{'n/a' if an is None else f'{an:.4f}'} | {w:,.0f} | {n} |")
    by = {(e, n): w for e, n, _, _, _, w, _ in rows}
    for epochs in sorted({r[0] for r in rows}):
        ratio = by[(epochs, "word2vec_sg")] / by[(epochs, "gensim_sg")]
        print(f"epochs {epochs}: the project's skip-gram trains at {ratio:.3f}× gensim's words/second")


if __name__ == "__main__":
    main()
