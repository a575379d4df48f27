"""DistributedDataParallel under the shared loop: 2 CPU processes (gloo) reach the same weights
as one process on the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mlsp_pipelines.models import build_model
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.training.loop import fit

PARAMS = dict(epochs=2, batch_size=8, lr=1e-2, patience=None, grad_clip=1.0, progress=False, seed=3)


def _data() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 10, 6, generator=g)
    y = torch.randint(0, 3, (32,), generator=g)
    return X, y, X[:16].clone(), y[:16].clone()


def _model() -> torch.nn.Module:
    torch.manual_seed(11)
    # no batch norm: it normalises by each rank's half batch, so ranks would not add up to one process
    return build_model("mlp", in_features=6, out_features=3, hidden_sizes=[16], dropout=0.0, pooled_norm=False)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    torch.set_num_threads(1)
    X, y, Xv, yv = _data()
    model = _model()
    result = fit(model, (X, y), (Xv, yv), params=TrainParams(**PARAMS))
    torch.save({"state": result.state_dict, "history": result.history}, Path(out) / f"rank{rank}.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_single_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    X, y, Xv, yv = _data()
    single = fit(_model(), (X, y), (Xv, yv), params=TrainParams(**PARAMS))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    untrained = _model().state_dict()
    for name, w in single.state_dict.items():
        assert not torch.equal(w, untrained[name]), "training did not move the weights"
        for r in ranks:
            torch.testing.assert_close(r["state"][name], w, rtol=1e-5, atol=1e-6)
    # losses are reduced across ranks, so both ranks report the single-process history
    for key in ("train_loss", "val_loss", "val_acc"):
        for r in ranks:
            assert r["history"][key] == pytest.approx(single.history[key], rel=1e-5, abs=1e-6)


def test_nproc_starts_the_ranks_inside_the_call_and_matches_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``train.nproc: 2``: the call itself starts two gloo ranks (what a node of any runner does
    for a multi-GPU model); epochs reach the caller's callbacks live, and the result is the
    single-process one, as under torchrun."""
    from mlsp_pipelines.datasets.checkpoint import CheckpointStore

    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    X, y, Xv, yv = _data()
    single = fit(_model(), (X, y), (Xv, yv), params=TrainParams(**PARAMS))
    seen: list[tuple[int, float]] = []
    model = _model()
    store = CheckpointStore(tmp_path / "ddp.ckpt")
    result = fit(model, (X, y), (Xv, yv), params=TrainParams(**PARAMS, nproc=2, num_threads=1), checkpoint=store,
                 callbacks=[lambda epoch, row: seen.append((epoch, row["val_loss"]))])
    assert [e for e, _ in seen] == [1, 2]
    assert [v for _, v in seen] == pytest.approx(single.history["val_loss"], rel=1e-5, abs=1e-6)
    for name, w in single.state_dict.items():
        torch.testing.assert_close(result.state_dict[name], w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.state_dict()[name], w, rtol=1e-5, atol=1e-6)  # the caller's model too
    assert result.epochs_run == 2 and not store.path.exists()  # rank 0 checkpointed, then cleared


def test_nproc_reports_a_failing_rank_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    X, y, Xv, yv = _data()
    with pytest.raises(Exception, match="training loss is nan"):
        fit(_model(), (X * float("nan"), y), (Xv, yv), params=TrainParams(**PARAMS, nproc=2, num_threads=1))
