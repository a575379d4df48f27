"""seq2seq training and decoding speed on a corpus of Multi30K's shape, against a bare PyTorch loop.

The corpus is generated (no download): 29,000 training pairs, word-level vocabularies of
10,000 source and 17,000 target words drawn with Zipf frequencies, source lengths from a
shifted negative binomial with Multi30K's mean (about 12 tokens, 2–40), target lengths
correlated with them (about 11.5). For every model of ``conf/base/parameters_seq2seq.yml``:

* **ours**: the pipeline's path, :func:`nodes.train_seq2seq` → the shared loop with
  length-bucketed batches, padding trimmed per batch, the teacher-forced pass batched over
  steps, every core (``num_threads: null``);
* **bare**: what one writes by hand: shuffled fixed batches of the padded tensors,
  ``model(src, tgt_in)``, cross-entropy, Adam; the same model, batch size, threads.

Both are timed on the same ``--pairs`` random training pairs, alternately, and reported as
epochs per minute of the full 29k-pair set; ``--full-epoch`` also times one whole epoch of
``gru_attn`` with the pipeline's path. Decoding: ``--decode`` sentences (1000) with batched
beam search (``report.beam_size``, ``report.batch_size``), time and the peak memory it adds
(``VmHWM``, reset before through ``/proc/self/clear_refs``).

Run: ``python benchmarks/seq2seq.py [--pairs 3000] [--models gru_attn transformer_s2s] [--full-epoch]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine a spinning pool
# waiting for a core another job holds made a 2-thread training step 4.4× slower than 1 thread
# (measured: 4.86 s vs 1.09 s per batch at load 5; 1.10 s with 2 passive threads). Read once,
# when torch loads, hence before the import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import mlsp_pipelines  # noqa: E402,F401  (first: pins the CPU kernels as every pipeline run does)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from mlsp_pipelines.features.vocab import SPECIALS, Vocab, pad_batch
from mlsp_pipelines.models import build_model
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.pipelines.seq2seq import nodes
from mlsp_pipelines.pipelines.seq2seq.params import Seq2SeqBatchParams, Seq2SeqReportParams

ROOT = Path(__file__).resolve().parents[1]


def multi30k_shaped(n: int, seed: int = 0, src_vocab: int = 10_000, tgt_vocab: int = 17_000
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(src, tgt_in, tgt_out) id tensors with Multi30K's sizes and length distribution."""
    rng = np.random.default_rng(seed)
    src_len = np.clip(2 + rng.negative_binomial(10, 10 / 20, size=n), 2, 40)          # mean ≈ 12
    tgt_len = np.clip(np.rint(src_len * rng.normal(0.95, 0.15, size=n)), 2, 40).astype(int)

    def zipf_ids(vocab: int, count: int) -> np.ndarray:
        ranks = np.arange(1, vocab - len(SPECIALS) + 1)
        p = 1.0 / ranks
        return len(SPECIALS) + rng.choice(len(ranks), size=count, p=p / p.sum())

    src = [zipf_ids(src_vocab, k).tolist() for k in src_len]
    tgt = [zipf_ids(tgt_vocab, k).tolist() for k in tgt_len]
    return (pad_batch(src), pad_batch([[1, *t] for t in tgt]), pad_batch([[*t, 2] for t in tgt], value=-100))


def vocab_of(size: int) -> Vocab:
    return Vocab([*SPECIALS, *(f"w{i}" for i in range(size - len(SPECIALS)))], level="word")


def bare_epoch(model: torch.nn.Module, data: tuple[torch.Tensor, ...], batch_size: int, lr: float, seed: int) -> float:
    """One epoch of the hand-written loop; returns seconds."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(len(data[0]))
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        src, tgt_in, tgt_out = (t[idx] for t in data)
        logits = model(src, tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                                 ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return time.perf_counter() - t0


def vm_hwm_mb() -> float:
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_hwm() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3000, help="training pairs timed per model and loop")
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--full-epoch", action="store_true")
    ap.add_argument("--decode", type=int, default=1000)
    ap.add_argument("--decode-only", action="store_true", help="skip the training measurements")
    args = ap.parse_args()
    os.environ["MLSP_PROGRESS"] = "0"
    conf = yaml.safe_load((ROOT / "conf/base/parameters_seq2seq.yml").read_text())["seq2seq"]
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    base = TrainParams(**{**conf["train"], "epochs": 1, "patience": None, "progress": False, "resume": False,
                          "num_threads": None, "log_every": None})
    report = Seq2SeqReportParams(**conf["report"])
    names = args.models or list(conf["models"])
    full = multi30k_shaped(29_000)
    lengths = (full[0] != 0).sum(1).float()
    print(f"Multi30K-shaped corpus: 29000 pairs, vocab 10000/17000, source length mean {lengths.mean():.1f} "
          f"(max {int(lengths.max())}), target mean {((full[2] != -100).sum(1) - 1).float().mean():.1f}; "
          f"{threads} threads (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}); batch {base.batch_size}; "
          f"load {os.getloadavg()[0]:.2f}")
    sub = tuple(t[: args.pairs] for t in full)
    val = multi30k_shaped(64, seed=1)
    model_input = {"src_vocab": vocab_of(10_000), "tgt_vocab": vocab_of(17_000), "train": sub, "val": tuple(t[:64] for t in val)}
    rows = []
    for name in ([] if args.decode_only else names):
        spec = ModelSpec(**conf["models"][name])
        times, cpu = {}, {}
        for loop in ("ours", "bare"):  # alternate within the model
            c0 = time.process_time()
            if loop == "ours":
                _, _, spent = nodes.train_seq2seq(model_input, spec, base, Seq2SeqBatchParams(), None, name=name)
                times[loop] = spent["train_seconds"]
            else:
                torch.manual_seed(0)
                net = build_model(spec.arch, in_features=10_000, out_features=17_000, **spec.kwargs)
                times[loop] = bare_epoch(net, sub, base.batch_size, base.lr, 0)
            cpu[loop] = time.process_time() - c0
        scale = 29_000 / args.pairs
        epm = {k: 60 / (v * scale) for k, v in times.items()}
        rows.append((name, spec.arch, epm["ours"], epm["bare"], epm["ours"] / epm["bare"], cpu["ours"] * scale,
                     cpu["bare"] * scale))
        print(f"  {name}: ours {epm['ours']:.2f} epochs/min, bare {epm['bare']:.2f} epochs/min "
              f"({epm['ours'] / epm['bare']:.1f}×); CPU s per epoch {cpu['ours'] * scale:.0f} vs "
              f"{cpu['bare'] * scale:.0f}; load {os.getloadavg()[0]:.2f}", flush=True)

    print("\n| model | arch | ours: epochs/min | bare PyTorch loop: epochs/min | speed-up | CPU s/epoch ours | CPU s/epoch bare |")
    print("|---|---|---|---|---|---|---|")
    for name, arch, a, b, r, ca, cb in rows:
        print(f"| {name} | {arch} | {a:.2f} | {b:.2f} | {r:.1f}× | {ca:.0f} | {cb:.0f} |")

    trained = {}
    if args.full_epoch:
        spec = ModelSpec(**conf["models"]["gru_attn"])
        model_input["train"] = full
        c0 = time.process_time()
        bundle, _, spent = nodes.train_seq2seq(model_input, spec, base, Seq2SeqBatchParams(), None, name="gru_attn")
        seconds = spent["train_seconds"]
        trained["gru_attn"] = bundle
        print(f"\nfull Multi30K-size epoch of gru_attn (29000 pairs, pipeline path): {seconds:.1f} s "
              f"wall, {time.process_time() - c0:.0f} CPU s ({bundle['threads']} threads, load {os.getloadavg()[0]:.2f})")

    print(f"\ndecoding {args.decode} sentences, beam {report.beam_size}, batch {report.batch_size}:")
    print("| model | seconds | CPU s | sentences/s | peak memory added (MB) |\n|---|---|---|---|---|")
    src = full[0][: args.decode]
    for name in names:
        spec = ModelSpec(**conf["models"][name])
        torch.manual_seed(0)
        net = build_model(spec.arch, in_features=10_000, out_features=17_000, **spec.kwargs).eval()
        if name in trained:
            net.load_state_dict(trained[name]["state_dict"])
        reset_hwm()
        before = vm_hwm_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        out = nodes.decode(net, src, report, max_len=int(1.5 * 41) + 5)
        sec = time.perf_counter() - t0
        print(f"| {name}{' (1 epoch)' if name in trained else ' (untrained: never stops early)'} | {sec:.1f} | "
              f"{time.process_time() - c0:.0f} | {len(out) / sec:.0f} | {vm_hwm_mb() - before:.0f} |", flush=True)


if __name__ == "__main__":
    main()
