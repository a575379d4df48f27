"""Encoder–decoders of the registry (``rnn_seq2seq``, ``transformer_seq2seq``): shapes, attention,
causal masking, greedy and beam-search decoding, training (tiny sizes, CPU)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from mlsp_pipelines.models import build_model, list_models, model_config
from mlsp_pipelines.models.seq2seq import Seq2SeqModel, State

torch.set_num_threads(1)

B, S, T, SRC_V, TGT_V = 4, 9, 6, 20, 12
PAD, BOS, EOS = 0, 1, 2

#: Small, dropout-free variants: every attention type and cell, and the Transformer.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gru_bahdanau": ("rnn_seq2seq", {"cell": "gru", "attention": "bahdanau", "embedding_dim": 8, "hidden_size": 16,
                                      "attention_size": 8, "dropout": 0.0}),
    "lstm_luong": ("rnn_seq2seq", {"cell": "lstm", "attention": "luong", "embedding_dim": 8, "hidden_size": 16,
                                    "dropout": 0.0}),
    "gru_noattn": ("rnn_seq2seq", {"cell": "gru", "attention": "none", "embedding_dim": 8, "hidden_size": 16,
                                    "dropout": 0.0}),
    "lstm_uni_2layer": ("rnn_seq2seq", {"cell": "lstm", "attention": "bahdanau", "embedding_dim": 8,
                                         "hidden_size": 16, "num_layers": 2, "bidirectional": False, "dropout": 0.0}),
    "transformer": ("transformer_seq2seq", {"d_model": 16, "n_heads": 2, "num_encoder_layers": 1,
                                            "num_decoder_layers": 2, "dim_feedforward": 32, "dropout": 0.0}),
    "transformer_postnorm": ("transformer_seq2seq", {"d_model": 16, "n_heads": 2, "num_encoder_layers": 1,
                                                     "num_decoder_layers": 1, "dim_feedforward": 32,
                                                     "dropout": 0.0, "norm_first": False}),
}
ATTENTIVE = [v for v in VARIANTS if v != "gru_noattn"]


def make(variant: str, seed: int = 0, **overrides: Any) -> Seq2SeqModel:
    name, kwargs = VARIANTS[variant]
    torch.manual_seed(seed)
    return build_model(name, in_features=SRC_V, out_features=TGT_V, **{**kwargs, **overrides})


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Source (B, S) with right padding of varying length, teacher-forced target input (B, T)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, SRC_V, (B, S), generator=g)
    for i, n in enumerate((S, 7, 4, 1)):
        src[i, n:] = PAD
    tgt_in = torch.randint(3, TGT_V, (B, T), generator=g)
    tgt_in[:, 0] = BOS
    return src, tgt_in


def test_registered() -> None:
    assert {"rnn_seq2seq", "transformer_seq2seq"} <= set(list_models())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_backward_shape(variant: str) -> None:
    model = make(variant).train()
    src, tgt_in = batch()
    logits = model(src, tgt_in)
    assert logits.shape == (B, T, TGT_V) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient: {unused}"


@pytest.mark.parametrize("variant", ATTENTIVE)
def test_attention_rows_sum_to_one_over_the_real_source(variant: str) -> None:
    model = make(variant).eval()
    src, tgt_in = batch()
    with torch.no_grad():
        attn = model.attention_weights(src, tgt_in)
    assert attn.shape == (B, T, S)
    assert (attn >= 0).all()
    torch.testing.assert_close(attn.sum(dim=-1), torch.ones(B, T))
    assert attn[src.eq(PAD).unsqueeze(1).expand_as(attn)].abs().max() == 0  # padding gets no weight
    torch.testing.assert_close(attn[3, :, 0], torch.ones(T))  # a one-token source
    assert attn[0].std(dim=-1).gt(0).all()  # not trivially uniform


def test_model_without_attention_has_no_weights() -> None:
    model = make("gru_noattn").eval()
    assert not model.has_attention and model.attention_weights(*batch()) is None
    assert make("gru_bahdanau").has_attention and make("transformer").has_attention


def test_padding_does_not_change_the_result() -> None:
    """Extra right padding of the source (a longer batch) leaves every output unchanged."""
    for variant in VARIANTS:
        model = make(variant).eval()
        src, tgt_in = batch()
        padded = torch.cat([src, torch.full((B, 5), PAD)], dim=1)
        with torch.no_grad():
            torch.testing.assert_close(model(src, tgt_in), model(padded, tgt_in), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["transformer", "transformer_postnorm", "gru_bahdanau"])
def test_decoder_does_not_look_ahead(variant: str) -> None:
    """Changing target token t changes the logits at steps >= t only (the causal mask)."""
    model = make(variant).eval()
    src, tgt_in = batch()
    t = 3
    changed = tgt_in.clone()
    changed[:, t] = (changed[:, t] + 1 - 3) % (TGT_V - 3) + 3
    with torch.no_grad():
        y, y2 = model(src, tgt_in), model(src, changed)
    torch.testing.assert_close(y[:, :t], y2[:, :t], rtol=0, atol=1e-5)
    assert not torch.allclose(y[:, t:], y2[:, t:])


def test_transformer_without_the_mask_would_look_ahead() -> None:
    """Sanity check of the test above: the same weights with no causal mask do see the future."""
    import mlsp_pipelines.models.seq2seq_transformer as mod

    model = make("transformer").eval()
    src, tgt_in = batch()
    changed = tgt_in.clone()
    changed[:, 3] = (changed[:, 3] + 1 - 3) % (TGT_V - 3) + 3
    original = mod.causal_mask
    try:
        mod.causal_mask = lambda n, device=None: torch.zeros(n, n, dtype=torch.bool, device=device)
        with torch.no_grad():
            assert not torch.allclose(model(src, tgt_in)[:, :3], model(src, changed)[:, :3])
    finally:
        mod.causal_mask = original


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_beam_size_one_equals_greedy(variant: str) -> None:
    model = make(variant, seed=1).eval()
    src, _ = batch(seed=2)
    greedy = model.generate(src, max_len=10, beam_size=1)
    assert torch.equal(model.beam_search(src, max_len=10, beam_size=1), greedy)
    assert torch.equal(model.greedy_decode(src, max_len=10), greedy)
    assert greedy.shape[0] == B and greedy.shape[1] <= 10
    beam = model.generate(src, max_len=10, beam_size=3)
    assert beam.shape[0] == B and beam.shape[1] <= 10
    # greedy decoding is teacher forcing on its own output
    tgt_in = torch.cat([torch.full((B, 1), BOS), greedy[:, :-1]], dim=1)
    with torch.no_grad():
        steps = model(src, tgt_in).argmax(-1)
    for i in range(B):
        row = greedy[i].tolist()
        n = row.index(EOS) + 1 if EOS in row else len(row)
        assert steps[i, :n].tolist() == row[:n]
        assert all(tok == PAD for tok in row[n:])  # after <eos>: padding


class ToyDecoder(Seq2SeqModel):
    """Fixed next-token distributions by previous token, so greedy is provably suboptimal:
    after <bos>: A 0.5, B 0.4, <eos> 0.1; after A: every token 1/4 (C, D, <eos>, ...);
    after B: <eos> 0.9. Greedy: A <eos> (0.5 x 0.25 = 0.125); best: B <eos> (0.36)."""

    model_name = "toy"

    def __init__(self) -> None:
        super().__init__()
        self.pad_idx, self.bos_idx, self.eos_idx, self.out_features = PAD, BOS, EOS, 7
        A, Bt, C, D = 3, 4, 5, 6
        table = torch.full((7, 7), 1e-6)
        table[BOS, [A, Bt, EOS]] = torch.tensor([0.5, 0.4, 0.1])
        table[A, [C, D, EOS, Bt]] = 0.25
        table[Bt, EOS], table[Bt, C] = 0.9, 0.1
        table[C, EOS] = table[D, EOS] = 1.0
        self.register_buffer("log_table", table.log())
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, src: torch.Tensor) -> State:
        return {"n": torch.zeros(src.shape[0])}

    def decode_step(self, state: State, prev: torch.Tensor) -> tuple[torch.Tensor, State, None]:
        return self.log_table[prev], state, None


def test_beam_search_finds_the_more_probable_sequence() -> None:
    toy = ToyDecoder()
    src = torch.ones(2, 3, dtype=torch.long)
    assert toy.generate(src, max_len=5, beam_size=1)[0].tolist() == [3, EOS]
    best = toy.generate(src, max_len=5, beam_size=2)
    assert best.tolist() == [[4, EOS], [4, EOS]]
    assert torch.equal(toy.beam_search(src, max_len=5, beam_size=1), toy.greedy_decode(src, max_len=5))
    # per-token log-probability (length_penalty=1): B <eos> -0.51 still beats A C <eos> -0.69
    assert toy.generate(src, max_len=5, beam_size=3, length_penalty=1.0)[0].tolist() == [4, EOS]


class TableDecoder(ToyDecoder):
    """Next-token probabilities from a table (row: previous token); ``<eos>`` early is likely,
    long outputs are likelier per token."""

    def __init__(self, rows: dict[int, dict[int, float]], vocab: int) -> None:
        super().__init__()
        self.out_features = vocab
        table = torch.full((vocab, vocab), 1e-9)
        for prev, nxt in rows.items():
            for tok, p in nxt.items():
                table[prev, tok] = p
        self.log_table = table.log()


def test_finished_hypotheses_do_not_hold_beam_slots() -> None:
    """After <bos>: A 0.40, <eos> 0.35, B 0.25; A -> C or D (0.5 each); B -> E 0.95; then <eos>.
    Per token (length_penalty=1) the best is B E <eos> (-0.48), then A C <eos> (-0.54), then
    <eos> alone (-1.05). With a beam of 2, a finished <eos> kept among the live hypotheses
    would push B out at the first step; finished hypotheses go to their own pool instead, so
    A and B both stay live and B E <eos> is found."""
    A, B, C, D, E = 3, 4, 5, 6, 7
    toy = TableDecoder({BOS: {A: 0.40, EOS: 0.35, B: 0.25}, A: {C: 0.5, D: 0.5}, B: {E: 0.95, EOS: 0.05},
                        C: {EOS: 1.0}, D: {EOS: 1.0}, E: {EOS: 1.0}}, vocab=8)
    src = torch.ones(3, 2, dtype=torch.long)
    assert toy.generate(src, max_len=6, beam_size=2, length_penalty=1.0).tolist() == [[B, E, EOS]] * 3
    # without a length penalty the raw log-probability wins: <eos> alone (-1.05 > -1.44)
    assert toy.generate(src, max_len=6, beam_size=2).tolist() == [[EOS]] * 3
    # at max_len the live hypotheses compete with the finished ones as they are: A (-0.92) > <eos> (-1.05)
    assert toy.generate(src, max_len=1, beam_size=2, length_penalty=1.0).tolist() == [[A]] * 3
    no_eos = TableDecoder({BOS: {A: 0.6, B: 0.4}, A: {C: 1.0}, B: {C: 1.0}, C: {C: 1.0}}, vocab=8)
    assert no_eos.generate(src, max_len=3, beam_size=2, length_penalty=1.0).tolist() == [[A, C, C]] * 3


def test_generate_restores_training_mode_and_checks_arguments() -> None:
    model = make("gru_bahdanau").train()
    src, _ = batch()
    model.generate(src, max_len=4, beam_size=2)
    assert model.training
    with pytest.raises(ValueError, match="beam_size"):
        model.generate(src, max_len=4, beam_size=0)
    with pytest.raises(ValueError, match=r"\(batch, length\)"):
        model(src.float(), src)


@pytest.mark.parametrize("variant", ["gru_bahdanau", "lstm_luong", "gru_noattn", "transformer"])
def test_learns_to_copy_a_tiny_batch(variant: str) -> None:
    """Teacher-forced training on 8 sequences: the loss falls by 10x and greedy output copies."""
    model = make(variant).train()
    g = torch.Generator().manual_seed(3)
    src = torch.randint(4, TGT_V, (8, 5), generator=g)
    tgt_in = torch.cat([torch.full((8, 1), BOS), src], dim=1)
    tgt_out = torch.cat([src, torch.full((8, 1), EOS)], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(src, tgt_in).reshape(-1, TGT_V), tgt_out.reshape(-1))
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        if loss.item() < 0.02 * first:
            break
    assert loss.item() < 0.1 * first, f"{variant}: loss {loss.item():.4f} vs start {first:.4f}"
    assert torch.equal(model.generate(src, max_len=8), tgt_out)


@pytest.mark.parametrize(
    ("name", "kwargs", "key"),
    [
        ("rnn_seq2seq", {"attention": "dot2"}, "attention"),
        ("rnn_seq2seq", {"cell": "rnn"}, "cell"),
        ("rnn_seq2seq", {"hidden_size": 0}, "hidden_size"),
        ("rnn_seq2seq", {"bos_idx": 0}, "bos_idx"),
        ("transformer_seq2seq", {"d_model": 30, "n_heads": 4}, "d_model"),
        ("transformer_seq2seq", {"num_decoder_layers": 0}, "num_decoder_layers"),
        ("transformer_seq2seq", {"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_hyperparameters_name_the_key(name: str, kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        model_config(name, **kwargs)
    with pytest.raises(ValueError, match="pad_idx"):
        build_model(name, in_features=SRC_V, out_features=TGT_V, pad_idx=TGT_V + 5)


@pytest.mark.parametrize("name", ["rnn_seq2seq", "transformer_seq2seq"])
def test_same_seed_same_weights_and_frozen_config(name: str) -> None:
    a = build_model(name, in_features=SRC_V, out_features=TGT_V) if torch.manual_seed(5) else None
    torch.manual_seed(5)
    b = build_model(name, in_features=SRC_V, out_features=TGT_V)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValidationError, match="frozen"):
        model_config(name).dropout = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_teacher_forcing_in_one_pass_equals_step_by_step_decoding(variant: str) -> None:
    """The whole-sequence forward (recurrence/attention/output layer batched over steps) is the
    same computation as feeding the target one token at a time through ``decode_step``."""
    model = make(variant).eval()
    src, tgt_in = batch(3)
    with torch.no_grad():
        logits = model(src, tgt_in)
        state = model.encode(src)
        steps = []
        for t in range(tgt_in.shape[1]):
            step, state, _ = model.decode_step(state, tgt_in[:, t])
            steps.append(step)
    torch.testing.assert_close(logits, torch.stack(steps, 1), rtol=1e-5, atol=1e-5)


def test_tied_embeddings_share_one_matrix_and_survive_a_rebuild() -> None:
    from mlsp_pipelines.models import rebuild_model
    from mlsp_pipelines.training.model_run import model_bundle

    kwargs = {"d_model": 16, "n_heads": 2, "num_encoder_layers": 1, "num_decoder_layers": 1, "dim_feedforward": 32}
    torch.manual_seed(0)
    tied = build_model("transformer_seq2seq", in_features=30, out_features=30, tie_embeddings=True, **kwargs)
    untied = build_model("transformer_seq2seq", in_features=30, out_features=30, **kwargs)
    assert tied.src_embed.weight is tied.tgt_embed.weight is tied.head.weight
    n = sum(p.numel() for p in tied.parameters())
    assert n == sum(p.numel() for p in untied.parameters()) - 2 * 30 * 16
    src, tgt = torch.randint(3, 30, (2, 5)), torch.randint(3, 30, (2, 4))
    tied(src, tgt).sum().backward()  # one gradient for the one matrix
    assert tied.src_embed.weight.grad is not None
    with pytest.raises(ValueError, match="vocab.shared"):
        build_model("transformer_seq2seq", in_features=30, out_features=31, tie_embeddings=True, **kwargs)
    state = {k: v.detach().clone() for k, v in tied.state_dict().items()}
    back = rebuild_model(model_bundle("t", "transformer_seq2seq", {**kwargs, "tie_embeddings": True}, 30, 30, state,
                                      params=n, best_epoch=1, epochs_run=1))
    assert back.src_embed.weight is back.head.weight
    tied.eval()
    assert torch.equal(back(src, tgt), tied(src, tgt))


@pytest.mark.parametrize("arch", ["rnn_seq2seq", "transformer_seq2seq"])
def test_special_tokens_outside_the_vocabulary_are_refused_by_every_seq2seq_model(arch: str) -> None:
    with pytest.raises(ValueError, match=r"eos_idx=12 is outside the vocabulary \(in_features=10, out_features=12\)"):
        build_model(arch, in_features=10, out_features=12, eos_idx=12)
    with pytest.raises(ValueError, match="pad_idx=10 is outside the vocabulary"):  # padding is a source token too
        build_model(arch, in_features=10, out_features=12, pad_idx=10)
    net = build_model(arch, in_features=10, out_features=12, pad_idx=0, bos_idx=11, eos_idx=10)
    assert (net.pad_idx, net.bos_idx, net.eos_idx) == (0, 11, 10)
