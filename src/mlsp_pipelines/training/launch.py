"""Data-parallel training of one node's model over processes started here (``train.nproc``).

What ``torchrun`` does for a whole run, done for one node: each rank runs the training engine
(:func:`~.engine.fit_here`), which never starts processes itself, so the launcher depends on the
engine and not the other way round.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.training import observers
from mlsp_pipelines.training.engine import EpochCallback, fit_here, resolve_device
from mlsp_pipelines.training.result import FitResult

logger = logging.getLogger("mlsp_pipelines.training.loop")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fit_in_processes(model: nn.Module, train: Sequence[Tensor], val: Sequence[Tensor] | None, *,
                     params: TrainParams, desc: str = "train", callbacks: Sequence[EpochCallback] = (),
                     **kwargs: Any) -> FitResult:
    """:func:`~.engine.fit_here` as DistributedDataParallel over ``params.nproc`` processes started here.

    What ``torchrun`` does for a whole run, done for one node: a multi-GPU model trains inside
    a node of any runner (a Dask worker's included) while the other nodes stay single-process.
    The ranks are spawned (CUDA cannot be forked) and find each other on 127.0.0.1; rank 0 sends
    every epoch's row back as it ends (the MLflow hook logs it live, from this process) and the
    result at the end. The model, data, sampler and collate travel by cloudpickle, so closures work.
    """
    import io

    import cloudpickle
    import torch.multiprocessing as mp

    device = resolve_device(params.device)
    if device.type == "cuda" and torch.cuda.device_count() < params.nproc:
        raise ValueError(f"train.nproc={params.nproc} with train.device={params.device!r}, but only "
                         f"{torch.cuda.device_count()} CUDA device(s) are visible; lower train.nproc")
    watchers = observers.active()
    for obs in watchers:
        obs.fit_started(desc=desc, train=train, val=val, params=params)
    on_epoch = (*callbacks, *(obs.epoch_ended for obs in watchers))
    logger.info("%s: DistributedDataParallel over %d processes (%s)", desc, params.nproc,
                "NCCL" if device.type == "cuda" else "gloo")
    threads = params.num_threads or max(1, torch.get_num_threads() // params.nproc)  # the cores, shared out
    payload = cloudpickle.dumps((model, tuple(train), None if val is None else tuple(val), params, desc, kwargs,
                                 threads))
    queue = mp.get_context("spawn").SimpleQueue()
    ranks = mp.start_processes(_fit_rank, args=(params.nproc, _free_port(), payload, queue), nprocs=params.nproc,
                               join=False, start_method="spawn")
    blob = None
    errors: list[tuple[int, str]] = []

    def drain() -> None:
        nonlocal blob
        while not queue.empty():
            kind, *message = queue.get()
            if kind == "epoch":
                for cb in on_epoch:
                    cb(*message)
            elif kind == "error":
                errors.append((message[0], message[1]))
            else:
                blob = message[0]

    try:
        while not ranks.join(timeout=0.5):  # raises when a rank exits with an error
            drain()
    except Exception as exc:
        drain()
        if errors:
            rank, trace = errors[0]
            last = trace.strip().splitlines()[-1]
            raise RuntimeError(f"{desc}: training rank {rank} of {params.nproc} failed: {last}\n{trace}") from exc
        raise
    drain()
    if blob is None:
        raise RuntimeError(f"{desc}: the {params.nproc} training processes ended without a result")
    result = FitResult(**torch.load(io.BytesIO(blob), weights_only=False))
    model.load_state_dict(result.state_dict)
    for obs in watchers:
        obs.fit_ended(result)
    return result


def _fit_rank(rank: int, world: int, port: int, payload: bytes, queue: Any) -> None:
    """One rank of :func:`fit_in_processes` (a spawned process: module-level, picklable)."""
    import dataclasses
    import io

    import cloudpickle
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    if rank == 0:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [rank 0]: %(message)s")
    model, train, val, params, desc, kwargs, threads = cloudpickle.loads(payload)
    torch.set_num_threads(threads)
    callbacks = (lambda epoch, row: queue.put(("epoch", epoch, row)),) if rank == 0 else ()
    code = 0
    try:
        result = fit_here(model, train, val, params=params, desc=desc, callbacks=callbacks, **kwargs)
        if rank == 0:  # bytes, not tensors: shared-memory tensors would die with this process
            buf = io.BytesIO()
            torch.save(dataclasses.asdict(result), buf)
            queue.put(("result", buf.getvalue()))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        import traceback

        queue.put(("error", rank, traceback.format_exc()))
        code = 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # Leave without the interpreter's teardown: after a failed collective, destroying DDP's
    # Reducer (main thread, holding the GIL) waits for gloo's worker thread, which waits for the
    # GIL to release a tensor -- a deadlock that left the rank, and the run, hanging. Everything
    # this rank had to say is already in the queue (a pipe: put returns once written).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
