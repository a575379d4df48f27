"""word2vec on a GPU (the torch engine) against gensim's one-thread words/second.

The GPU machine need not have gensim, Kedro or pydantic: this script needs torch and numpy
only Three steps:

1. here: ``python benchmarks/word2vec_gpu.py prepare DIR`` writes the token streams (gensim's
   Lee corpus for quality; Lee + ``head500.noblanks.cor`` repeated ``--repeat`` times for timing)
   to ``DIR/w2v_gpu.npz``;
2. on the GPU machine: ``python benchmarks/word2vec_gpu.py device DIR/w2v_gpu.npz OUT`` trains
   skip-gram and CBOW with ``engine=torch`` on CUDA, prints
   words/second and writes the Lee vectors and ``gpu_results.json`` to ``OUT``;
3. here: ``python benchmarks/word2vec_gpu.py compare DIR/w2v_gpu.npz OUT`` times gensim (one
   worker) on the same streams and scores every Lee vector set on WordSim353 and analogies.

Hyper-parameters are the pipeline's defaults (dim 100, window 5, 5 negatives, sample 1e-3,
alpha 0.025 → 0.0001, 10 epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

EPOCHS, DIM, WINDOW, NEG, SAMPLE = 10, 100, 5, 5, 1e-3


def prepare(out: Path, repeat: int) -> None:
    from mlsp_pipelines.features import text
    from mlsp_pipelines.datasets.text import TextCorpusDataset, gensim_test_file

    lee = list(TextCorpusDataset().load())
    wiki = list(TextCorpusDataset(filepath=str(gensim_test_file("head500.noblanks.cor"))).load())
    arrays = {}
    for name, docs in (("lee", lee), ("big", (lee + wiki) * repeat)):
        toks = text.tokenize_documents(docs)
        vocab = text.build_vocabulary(toks, min_count=2)
        ids, doc = text.encode(toks, vocab)
        arrays.update({f"{name}_ids": ids, f"{name}_doc": doc, f"{name}_words": np.asarray(vocab.words, dtype=str),
                       f"{name}_keep": text.keep_probabilities(vocab.counts, SAMPLE),
                       f"{name}_noise": text.noise_distribution(vocab.counts, 0.75)})
        print(f"{name}: {len(docs)} documents, {len(ids)} in-vocabulary tokens, vocabulary {len(vocab)}")
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "w2v_gpu.npz", **arrays)


def _settings(kind: str, engine: str, device: str, batch: int = 4096, deterministic: bool = True, seed: int = 0):
    from mlsp_pipelines.training.word2vec_sgd import SGDSettings

    return SGDSettings(kind=kind, dim=DIM, window=WINDOW, negative=NEG, epochs=EPOCHS, seed=seed, engine=engine,
                       device=device, batch_pairs=batch, deterministic=deterministic)


def device(npz: Path, out: Path, smoke: bool = False) -> None:
    import torch

    from mlsp_pipelines.training import word2vec_sgd as sgd

    global EPOCHS
    d = dict(np.load(npz))
    out.mkdir(parents=True, exist_ok=True)
    cuda = "cuda" if torch.cuda.is_available() else "cpu"
    if smoke:  # a check of this script on a machine without a GPU: one epoch, the small corpus
        EPOCHS = 1
        d.update({k.replace("lee_", "big_"): v for k, v in d.items() if k.startswith("lee_")})
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"GPU {gpu} | torch {torch.__version__} | CPU threads {os.cpu_count()}", flush=True)
    results = []

    def run(corpus: str, kind: str, engine: str, dev: str, **kw) -> np.ndarray:
        r = sgd.train(d[f"{corpus}_ids"], d[f"{corpus}_doc"], d[f"{corpus}_keep"], d[f"{corpus}_noise"],
                      _settings(kind, engine, dev, **kw))
        wps = len(d[f"{corpus}_ids"]) * EPOCHS / r.train_seconds
        row = {"corpus": corpus, "kind": kind, "engine": engine, "device": dev, **kw, "words_per_second": wps,
               "train_seconds": r.train_seconds, "final_loss": r.history["train_loss"][-1]}
        results.append(row)
        print(json.dumps(row), flush=True)
        return r.syn0

    torch.set_num_threads(1)
    # warm-up: CUDA context, kernels (not timed in the rows below)
    run("lee", "sg", "torch", cuda, batch=4096)
    results.clear()
    for kind in ("sg", "cbow"):
        for seed in (0, 1, 2):
            np.save(out / f"lee_{kind}_torch_seed{seed}.npy", run("lee", kind, "torch", cuda, batch=4096, seed=seed))
        run("big", kind, "torch", cuda, batch=4096)
        run("big", kind, "torch", cuda, batch=4096, deterministic=False)
        run("big", kind, "torch", cuda, batch=16384)
    (out / "gpu_results.json").write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "rows": results}, indent=1))


def compare(npz: Path, results_dir: Path) -> None:
    from gensim.models import Word2Vec

    from mlsp_pipelines.datasets.text import AnalogyDataset, WordSimDataset
    from mlsp_pipelines.evaluation import embeddings as ev

    d = np.load(npz)
    res = json.loads((results_dir / "gpu_results.json").read_text())
    ws, an = WordSimDataset().load(), AnalogyDataset().load()

    def sentences(corpus: str) -> list[list[str]]:
        words, ids, doc = d[f"{corpus}_words"], d[f"{corpus}_ids"], d[f"{corpus}_doc"]
        cuts = np.flatnonzero(np.diff(doc)) + 1
        return [s.tolist() for s in np.split(words[ids], cuts) if len(s)]

    def gensim(corpus: str, kind: str, seed: int = 0) -> tuple[float, Word2Vec]:
        sents = sentences(corpus)
        m = Word2Vec(vector_size=DIM, window=WINDOW, min_count=2, sample=SAMPLE, negative=NEG, hs=0, sg=int(kind == "sg"),
                     workers=1, epochs=EPOCHS, seed=seed, alpha=0.025, min_alpha=0.0001)
        m.build_vocab(sents)
        t0 = time.perf_counter()
        m.train(sents, total_examples=m.corpus_count, epochs=EPOCHS)
        return len(d[f"{corpus}_ids"]) * EPOCHS / (time.perf_counter() - t0), m

    print(f"GPU: {res['gpu']} (torch {res['torch']}); load here {os.getloadavg()[0]:.2f}\n")
    print("| corpus | kind | engine | device | batch | deterministic | words/s | × gensim (1 thread, here) |")
    print("|---|---|---|---|---|---|---|---|")
    anchors = {}
    for kind in ("sg", "cbow"):
        anchors[kind] = gensim("big", kind)[0]
        for row in res["rows"]:
            if row["corpus"] == "big" and row["kind"] == kind:
                print(f"| big | {kind} | {row['engine']} | {row['device']} | {row.get('batch', '-')} | "
                      f"{row.get('deterministic', True)} | {row['words_per_second']:,.0f} | "
                      f"{row['words_per_second'] / anchors[kind]:.1f} |")
        print(f"| big | {kind} | gensim | cpu (here) | - | - | {anchors[kind]:,.0f} | 1.0 |")
    words = list(d["lee_words"])
    print("\n| Lee corpus, 3 seeds | WordSim353 ρ (mean) | analogy acc. (mean) |\n|---|---|---|")
    for kind in ("sg", "cbow"):
        q = [(ev.word_pair_spearman(words, v, ws)["spearman"], ev.analogy_accuracy(words, v, an)["accuracy"])
             for v in (np.load(results_dir / f"lee_{kind}_torch_seed{s}.npy") for s in (0, 1, 2))]
        g = []
        for s in (0, 1, 2):
            m = gensim("lee", kind, seed=s)[1]
            g.append((ev.word_pair_spearman(m.wv.index_to_key, m.wv.vectors, ws)["spearman"],
                      ev.analogy_accuracy(m.wv.index_to_key, m.wv.vectors, an)["accuracy"]))
        print(f"| torch engine on GPU, {kind} | {np.mean([a for a, _ in q]):.3f} | {np.mean([b for _, b in q]):.4f} |")
        print(f"| gensim {kind} | {np.mean([a for a, _ in g]):.3f} | {np.mean([b for _, b in g]):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["prepare", "device", "compare"])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--smoke", action="store_true", help="device step without a GPU: 1 epoch, small corpus")
    args = ap.parse_args()
    if args.step == "prepare":
        prepare(args.paths[0], args.repeat)
    elif args.step == "device":
        device(args.paths[0], args.paths[1], smoke=args.smoke)
    else:
        compare(args.paths[0], args.paths[1])


if __name__ == "__main__":
    main()
