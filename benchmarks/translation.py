"""Speed of the ``--env=translation`` preset against a bare PyTorch loop with ``nn.Transformer``.

Both train the preset's Transformer sizes (``conf/translation/parameters_seq2seq.yml``: d_model
256, 3+3 layers, 4 heads, feed-forward 1024, a shared 10k vocabulary, tied embeddings) on the
same Multi30K-shaped pairs (``benchmarks/seq2seq.py``'s generator), alternately, in one run:

* **ours**: the pipeline's path, :func:`nodes.train_seq2seq` -- the shared loop with token-budget
  batches (``max_tokens``), padding trimmed per batch, the output layer on real target steps only,
  label smoothing, warm-up + cosine schedule;
* **bare**: what one writes by hand: ``nn.Transformer`` with the same sizes, embeddings and tied
  output layer, shuffled batches of 128 rows of the padded tensors, cross-entropy with label
  smoothing over every step, AdamW.

Training speed is target tokens (non-padding) per second. Decoding: ``--decode`` sentences with
the pipeline's batched beam search (beam 5, the preset's length penalty) against the hand-written
greedy loop of the bare model (re-running the decoder over the whole prefix each step, as
``nn.Transformer`` tutorials do), sentences per second. Untrained weights: the decoders run to
the length limit, which is the slowest case for both.

Run: ``python benchmarks/translation.py [--pairs 3000] [--decode 500]``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from pathlib import Path

import mlsp_pipelines  # noqa: F401  (first: pins the CPU kernels as every pipeline run does)
import torch
import yaml
from seq2seq import multi30k_shaped, vocab_of  # benchmarks/seq2seq.py
from torch import nn

from mlsp_pipelines.models import build_model
from mlsp_pipelines.models.transformer import sinusoidal_encoding
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.pipelines.seq2seq import nodes
from mlsp_pipelines.pipelines.seq2seq.params import Seq2SeqBatchParams, Seq2SeqReportParams

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 10_000
warnings.filterwarnings("ignore", message="enable_nested_tensor is True")  # nn.Transformer with norm_first


class BareTransformer(nn.Module):
    """``nn.Transformer`` with token embeddings, sinusoidal positions and a tied output layer."""

    def __init__(self, vocab: int, d_model: int, n_heads: int, layers: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.d = d_model
        self.emb = nn.Embedding(vocab, d_model, padding_idx=0)
        self.tf = nn.Transformer(d_model, n_heads, layers, layers, ff, dropout, batch_first=True, norm_first=True)
        self.out = nn.Linear(d_model, vocab)
        self.out.weight = self.emb.weight

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids) * math.sqrt(self.d) + sinusoidal_encoding(ids.shape[1], self.d, device=ids.device)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        mask = torch.triu(torch.ones(tgt_in.shape[1], tgt_in.shape[1], dtype=torch.bool), diagonal=1)
        h = self.tf(self.embed(src), self.embed(tgt_in), tgt_mask=mask, src_key_padding_mask=src == 0,
                    tgt_key_padding_mask=tgt_in == 0, memory_key_padding_mask=src == 0)
        return self.out(h)

    @torch.inference_mode()
    def greedy(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        out = torch.ones(src.shape[0], 1, dtype=torch.long)  # <bos>
        for _ in range(max_len):
            nxt = self(src, out)[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], 1)
        return out


def bare_epoch(net: nn.Module, data: tuple[torch.Tensor, ...], rows: int, lr: float, smoothing: float) -> float:
    torch.manual_seed(0)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    net.train()
    order = torch.randperm(len(data[0]))
    t0 = time.perf_counter()
    for i in range(0, len(order), rows):
        src, tgt_in, tgt_out = (t[order[i : i + rows]] for t in data)
        logits = net(src, tgt_in)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                           ignore_index=-100, label_smoothing=smoothing)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    return time.perf_counter() - t0


def preset(model: str) -> tuple[ModelSpec, TrainParams, Seq2SeqBatchParams, Seq2SeqReportParams]:
    """The ``--env=translation`` preset's ``model``, its training, batching and report settings, read
    raw from ``conf/`` (base training updated by the preset) and set for one timed epoch. The model's
    own ``train`` overrides stay in the spec: ``train_seq2seq`` applies them as in a run."""
    base = yaml.safe_load((ROOT / "conf/base/parameters_seq2seq.yml").read_text())["seq2seq"]
    conf = yaml.safe_load((ROOT / "conf/translation/parameters_seq2seq.yml").read_text())["seq2seq"]
    train = TrainParams(**{**base["train"], **conf["train"], "epochs": 1, "patience": None, "progress": False,
                           "resume": False, "num_threads": None, "log_every": None})
    # the preset's tokenized_bleu is a run-time interpolation (the target language), not a value
    # this raw YAML read can resolve; decoding speed does not depend on it
    report = Seq2SeqReportParams(**{k: v for k, v in conf["report"].items() if k != "tokenized_bleu"})
    # a run chooses one of the preset's length penalties on the validation split; the speed of a
    # beam does not depend on which, so the benchmark decodes with the first
    report = report.with_length_penalty(report.length_penalties[0])
    return ModelSpec(**conf["models"][model]), train, Seq2SeqBatchParams(**conf["batching"]), report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3000, help="training pairs timed per loop")
    ap.add_argument("--decode", type=int, default=500)
    args = ap.parse_args()
    os.environ["MLSP_PROGRESS"] = "0"
    spec, train, batching, report = preset("transformer_s2s")
    k = spec.kwargs
    full = multi30k_shaped(29_000, src_vocab=VOCAB, tgt_vocab=VOCAB)
    data = tuple(t[: args.pairs] for t in full)
    tokens = int((data[2] != -100).sum())
    model_input = {"src_vocab": vocab_of(VOCAB), "tgt_vocab": vocab_of(VOCAB), "train": data,
                   "val": tuple(t[:0] for t in data)}
    print(f"{args.pairs} Multi30K-shaped pairs ({tokens} target tokens), shared vocabulary {VOCAB}; "
          f"{torch.get_num_threads()} threads; load {os.getloadavg()[0]:.2f}")
    seconds = {}
    for loop in ("ours", "bare"):
        if loop == "ours":
            _, _, spent = nodes.train_seq2seq(model_input, spec, train, batching, None, name="transformer_s2s")
            seconds[loop] = spent["train_seconds"]
        else:
            torch.manual_seed(0)
            net = BareTransformer(VOCAB, k["d_model"], k["n_heads"], k["num_encoder_layers"], k["dim_feedforward"],
                                  k["dropout"])
            seconds[loop] = bare_epoch(net, data, 128, train.lr, train.label_smoothing)
        print(f"  {loop}: {seconds[loop]:.1f} s, {tokens / seconds[loop]:.0f} target tokens/s", flush=True)
    print(f"training speed-up (ours / bare tokens per second): {seconds['bare'] / seconds['ours']:.2f}x")

    src = full[0][: args.decode]
    src = src[:, : int((src != 0).sum(1).max())]
    max_len = 40
    torch.manual_seed(0)
    ours = build_model(spec.arch, in_features=VOCAB, out_features=VOCAB, **k).eval()
    t0 = time.perf_counter()
    nodes.decode(ours, src, report, max_len)
    t_ours = time.perf_counter() - t0
    bare = BareTransformer(VOCAB, k["d_model"], k["n_heads"], k["num_encoder_layers"], k["dim_feedforward"], 0.0).eval()
    t0 = time.perf_counter()
    for i in range(0, len(src), report.batch_size):
        bare.greedy(src[i : i + report.batch_size], max_len)
    t_bare = time.perf_counter() - t0
    print(f"decoding {len(src)} sentences to {max_len} tokens: ours beam {report.beam_size} "
          f"{len(src) / t_ours:.1f} sentences/s; bare greedy {len(src) / t_bare:.1f} sentences/s; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
