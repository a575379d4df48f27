"""The Dask cluster a :class:`~mlsp_pipelines.runner.DaskRunner` run uses, and what every worker needs.

Configuration is ``dask.yml`` of the Kedro environment (``conf/dask/dask.yml``; any environment
may carry one), validated by :class:`DaskSettings` so a typo stops the run before any work.
``MLSP_DASK_SCHEDULER`` (environment) and ``--runner-params address=...`` override the scheduler
address; without one a :class:`distributed.LocalCluster` is started on this machine and closed
at the end of the run.

Workers must compute what a sequential run computes, bit for bit. That needs, on every worker:

* the pinned CPU kernels (``determinism.PINNED_ENV``), set *before* numpy and torch load --
  ``import distributed`` already loads numpy, so they must be in the worker process's
  environment when it starts: a LocalCluster passes them to its nannies; a real cluster sets
  them in its job script or pod spec (``python -m mlsp_pipelines.cluster worker-env`` prints
  them). :class:`WorkerSetup` checks every worker and refuses one that does not have them;
* a fixed torch thread count (``torch_threads``; the thread count is part of the results);
* this package at the driver's version, and the project's ``data/`` at the driver's path.

And one thing it must *not* have: Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``). With it glibc hands freed memory back to the OS after
nearly every tensor, so training pays page faults on every allocation: measured on the
viscoelastic MLP, 18 s of training took 12.1 s of system time instead of 2.4 s, and every model of
a two-worker run was 1.2-1.9x slower than alone. A LocalCluster started here leaves it out;
:func:`malloc_trim_problem` names it on a worker of a real cluster (the runner warns).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed import WorkerPlugin
from pydantic import Field

from mlsp_pipelines import determinism
from mlsp_pipelines.config import NODE_SECONDS
from mlsp_pipelines.section import Section

logger = logging.getLogger(__name__)

#: Scheduler address from the environment (wins over dask.yml, loses to --runner-params).
SCHEDULER_ENV = "MLSP_DASK_SCHEDULER"
#: Worker-process default of torch's intra-op threads (read by ``determinism.configure_torch``).
TORCH_THREADS_ENV = determinism.TORCH_THREADS_ENV

_ACTIVE: dict[str, Any] | None = None


class DaskSettings(Section):
    """``dask.yml``: where the cluster is and how a local one is shaped."""

    scheduler_address: str | None = None  # tcp://host:8786 of a running cluster; None: a LocalCluster
    n_workers: int | None = Field(None, ge=1)  # LocalCluster: None = cores // torch_threads (see local_workers)
    threads_per_worker: int = Field(1, ge=1)  # LocalCluster: concurrent nodes per worker
    memory_limit: str | float | int = "auto"  # LocalCluster: per worker ("4GiB", bytes, or "auto")
    #: torch intra-op threads in every task (part of the results): the sequential default's count,
    #: so a run fanned out over a LocalCluster writes the same bytes as one run node after node
    torch_threads: int = Field(determinism.PINNED_THREADS, ge=1)
    allowed_failures: int = Field(3, ge=0)  # LocalCluster: retries of a task whose worker died
    retries: int = Field(0, ge=0)  # re-runs of a node that raised (0: an error fails the run at once)
    dashboard_address: str | None = None  # LocalCluster: ":8787" (this machine only); "0.0.0.0:8787": every interface
    check_workers: bool = True  # refuse workers whose CPU kernels are not pinned (see module doc)
    #: node durations of earlier runs (JSON, by node name): the longest work starts first; None: namespace order
    node_seconds: str | None = NODE_SECONDS


def set_active(conf: dict[str, Any] | None) -> None:
    """Record the run's ``dask.yml`` (the project hook calls this when the context exists)."""
    global _ACTIVE
    _ACTIVE = dict(conf) if conf is not None else None


def resolve(overrides: dict[str, Any] | None = None) -> DaskSettings:
    """``dask.yml`` of the active environment, then ``MLSP_DASK_SCHEDULER``, then ``overrides``."""
    conf: dict[str, Any] = dict(_ACTIVE or {})
    if os.environ.get(SCHEDULER_ENV):
        conf["scheduler_address"] = os.environ[SCHEDULER_ENV]
    conf.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return DaskSettings(**conf)
    except Exception as exc:
        raise ValueError(f"dask.yml (or --runner-params): {exc}") from exc


def local_workers(settings: DaskSettings, cores: int | None = None) -> int:
    """Workers of a LocalCluster: ``n_workers``, or as many as the cores hold at ``torch_threads`` each."""
    if settings.n_workers:
        return settings.n_workers
    return max(1, (cores or os.cpu_count() or 1) // (settings.threads_per_worker * settings.torch_threads))


def worker_env(settings: DaskSettings) -> dict[str, str]:
    """Environment every worker process needs from its start (see module doc): the kernel tier of
    the driver (a worker on a CPU without it refuses to start rather than compute other bits)."""
    env = {} if determinism.fast_kernels() else {determinism.TIER_ENV: determinism.TIER, **determinism.PINNED_ENV}
    if determinism.fast_kernels():
        env[determinism.FAST_KERNELS_ENV] = "1"
    env[TORCH_THREADS_ENV] = str(settings.torch_threads)
    return env


#: glibc's trim threshold variable, which Dask's nannies set to 64 KiB in every worker by default.
MALLOC_TRIM_ENV = "MALLOC_TRIM_THRESHOLD_"
#: Below this, freed tensors go back to the OS too often (glibc's own default is 128 KiB and grows
#: with the largest freed block when the variable is unset).
MIN_MALLOC_TRIM = 64 * 1024 * 1024


def nanny_environ() -> dict[str, Any]:
    """Dask's ``distributed.nanny.pre-spawn-environ`` without :data:`MALLOC_TRIM_ENV` (module doc)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.pop(MALLOC_TRIM_ENV, None)
    return env


def nanny_environ_override() -> str:
    """The shell line that makes the nannies of a real cluster start workers with a sane threshold."""
    return f"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=\"{{'{MALLOC_TRIM_ENV}': {MIN_MALLOC_TRIM}}}\""


def malloc_trim_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why this process's glibc trim threshold slows training down (None when it does not)."""
    raw = (os.environ if environ is None else environ).get(MALLOC_TRIM_ENV)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    if value >= MIN_MALLOC_TRIM:
        return None
    return (f"{MALLOC_TRIM_ENV}={value} (Dask's nanny default) returns freed memory to the OS after nearly "
            "every tensor, and training pays for it in page faults (1.2-1.9x slower measured). Start the "
            f"workers with {nanny_environ_override()}")


#: Where a LocalCluster listens: this machine only, unless dask.yml names another host.
LOOPBACK = "127.0.0.1"


def dashboard_bind(address: str | None) -> str:
    """The HTTP address of a LocalCluster's scheduler (its dashboard, or Dask's JSON, info and
    Prometheus pages, which it serves even without the dashboard). Dask reads a missing host as
    "every interface"; here it is the loopback address: ``None`` -> ``127.0.0.1:0`` (a free port),
    ``":8787"`` or ``"8787"`` -> ``127.0.0.1:8787``. Only an explicit host (``0.0.0.0:8787``,
    ``10.0.0.5:8787``) is served elsewhere: the user asked for it."""
    if not address:
        return f"{LOOPBACK}:0"
    text = str(address).strip()
    for scheme in ("http://", "https://", "tcp://"):
        text = text.removeprefix(scheme)
    host, sep, port = text.rpartition(":")
    if not sep:  # a bare port
        return f"{LOOPBACK}:{text}"
    return f"{host or LOOPBACK}:{port}"


@contextmanager
def connect(settings: DaskSettings) -> Iterator[Any]:
    """A ``distributed.Client`` of the configured scheduler, or of a LocalCluster made here (and
    closed on exit, with its workers)."""
    import dask
    from distributed import Client, LocalCluster

    if settings.scheduler_address:
        logger.info("Dask: connecting to the scheduler at %s", settings.scheduler_address)
        with Client(settings.scheduler_address, set_as_default=False) as client:
            yield client
        return
    # nodes may start processes of their own (feature extraction pools, the ranks of a model with
    # train.nproc > 1): workers must not be daemons. The nannies read this when they (re)start a
    # worker, e.g. after one died, so it holds for the cluster's whole life, not only its start.
    with dask.config.set({"distributed.worker.daemon": False,
                          "distributed.scheduler.allowed-failures": settings.allowed_failures,
                          # a node is minutes long: never queue one behind another on a busy worker
                          # (the default 1.1 lets a 1-thread worker hold two) while a thread is free
                          "distributed.scheduler.worker-saturation": 1.0,
                          # glibc's own trimming, not Dask's 64 KiB (module doc: page faults)
                          "distributed.nanny.pre-spawn-environ": nanny_environ(),
                          # a LocalCluster closes the nanny of a worker the scheduler lost when no
                          # worker of that name is back 15 s later; its nanny restarts it (slower on
                          # a loaded machine, and absent again if it dies twice), and a closed nanny
                          # would leave the cluster a worker short for good
                          "distributed.deploy.lost-worker-timeout": "1h"}):
        # scheduler, nannies and workers on the loopback address; so is the scheduler's HTTP server
        # (":0" would be every interface) and each worker's (it takes the worker's host)
        cluster = LocalCluster(n_workers=local_workers(settings), host=LOOPBACK,
                               threads_per_worker=settings.threads_per_worker, processes=True,
                               memory_limit=settings.memory_limit,
                               dashboard_address=dashboard_bind(settings.dashboard_address),
                               scheduler_kwargs={"dashboard": bool(settings.dashboard_address)},
                               env=worker_env(settings), silence_logs=logging.WARNING)
        logger.info("Dask: a LocalCluster of %d worker(s) × %d thread(s), torch threads %d per task%s",
                    len(cluster.workers), settings.threads_per_worker, settings.torch_threads,
                    f", dashboard {cluster.dashboard_link}" if settings.dashboard_address else "")
        try:
            with Client(cluster, set_as_default=False) as client:
                yield client
        finally:
            cluster.close()


class WorkerSetup(WorkerPlugin):
    """Worker plugin: the torch thread count of the run, and a check of the kernel pins.

    Registered by the runner on every worker (and on workers that join later). A worker whose
    numpy or torch runs unpinned kernels would train other bits than the driver expects, so its
    set-up fails with the fix in the message.
    """

    name = "mlsp-worker-setup"

    def __init__(self, torch_threads: int, check: bool = True) -> None:
        self.torch_threads = torch_threads
        self.check = check

    def setup(self, worker: Any) -> None:
        # runs on the worker's event loop: nothing slow here (no torch import; warm_up does that in
        # a task thread), or a loaded machine misses heartbeats and the nanny restarts the worker
        import mlsp_pipelines  # noqa: F401 - the package's start-up pins (for what loads after)

        os.environ[TORCH_THREADS_ENV] = str(self.torch_threads)
        found = determinism.problems() if self.check else []
        if found:
            raise RuntimeError(
                f"Dask worker {getattr(worker, 'address', '?')}: CPU kernels are not pinned ({'; '.join(found)}), "
                "so its results would differ from a sequential run. Start the worker with these variables in "
                "its environment (`python -m mlsp_pipelines.cluster worker-env` prints them): "
                + " ".join(f"{k}={v}" for k, v in determinism.PINNED_ENV.items())
            )


def fan_out(func: Any, calls: list[tuple[Any, ...]], *, shared: Any = None, name: str = "task") -> list[Any]:
    """``[func(shared, *args) for args in calls]``, on the Dask cluster when called inside a task of
    one (a node under :class:`~mlsp_pipelines.runner.DaskRunner`), else here, one after another.

    On a worker the calling task secedes from the worker's thread pool while it waits (its slot
    goes to the calls), ``shared`` is sent once to the cluster, and the results come back in the
    order of ``calls`` whatever order they finish in. The first failing call's error is raised.
    """
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        return [func(shared, *args) for args in calls]
    import uuid

    tag = uuid.uuid4().hex[:8]
    with worker_client() as client:
        data = client.scatter([shared], hash=False)[0]
        futures = [client.submit(func, data, *args, key=f"{name}-{i}-{tag}", pure=False)
                   for i, args in enumerate(calls)]
        return client.gather(futures)


def warm_up() -> int:
    """Import what every node needs, in a worker's task thread (the runner runs it once per worker,
    all at once, so the first node's time is its own; plugin set-up would block the event loop)."""
    import kedro.runner  # noqa: F401
    import mlflow  # noqa: F401

    determinism.configure_torch()  # imports torch; torch_threads from the environment
    return os.getpid()


def worker_report() -> dict[str, Any]:
    """What a worker runs with (logged by the runner): pid, kernels, torch threads."""
    info = determinism.status()
    return {"pid": os.getpid(), "python": sys.version.split()[0], "pinned": info["pinned"],
            "aten": info["aten_capability"], "torch_threads": info.get("torch_threads"),
            "problems": determinism.problems(info), "malloc": malloc_trim_problem()}


def main(argv: list[str] | None = None) -> int:
    """``python -m mlsp_pipelines.cluster worker-env``: the environment a worker must start with."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["worker-env"])
    ap.add_argument("--torch-threads", type=int, default=DaskSettings().torch_threads)
    args = ap.parse_args(argv)
    # the command's product is shell lines on stdout (job scripts capture them), not log messages
    lines = [f"export {key}={value!r}" if " " in value else f"export {key}={value}"
             for key, value in worker_env(DaskSettings(torch_threads=args.torch_threads)).items()]
    lines += ["export DASK_DISTRIBUTED__WORKER__DAEMON=False", f"export {nanny_environ_override()}"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
