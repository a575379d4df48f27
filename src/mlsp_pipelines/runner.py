"""A sequential runner that finishes one namespace before starting the next.

Kedro's ``SequentialRunner`` runs nodes level by level of the topological sort: every model's
training, then every model's evaluation. A model's MLflow run (opened when its training starts,
closed when its evaluation ends) would then span the training of all the other models, and its
duration would say nothing about its own work. This runner executes the same nodes in another
valid topological order: among the nodes whose inputs are ready it prefers the one that shares
the longest namespace with the node that ran last (ties keep Kedro's order), so ``asc.cnn``'s
train → evaluate → explain run back to back. It is the default of ``kedro run`` in this project
(``cli.py``); ``--runner=SequentialRunner`` restores Kedro's order.

:class:`DaskRunner` (``--runner=dask``) runs the independent nodes -- architectures,
cross-validation folds -- at once on a Dask cluster, in the same namespace order, with the same
outputs byte for byte (``cluster.py`` sets up the cluster and its workers). When several nodes are
ready and fewer workers are free, it starts the longest work first -- the longest chain of node
durations below each node, read from :data:`NODE_SECONDS`, which both runners keep up to date.
Without that, the last model to start (alphabetically the transformer, the slowest) ran alone at
the end of a 2-worker asc run while the other worker idled. Durations only choose an order
among ready nodes: the outputs are the same whatever order runs them.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import AbstractRunner, SequentialRunner

from mlsp_pipelines.config import NODE_SECONDS


def _shared_depth(a: str | None, b: str | None) -> int:
    """Number of leading namespace parts ``a`` and ``b`` have in common."""
    pa, pb = (a or "").split("."), (b or "").split(".")
    n = 0
    for x, y in zip(pa, pb):
        if not x or x != y:
            break
        n += 1
    return n


def _children(pipeline: Pipeline) -> dict[Node, list[Node]]:
    """For every node, the nodes that read one of its outputs."""
    children: dict[Node, list[Node]] = {n: [] for n in pipeline.nodes}
    for n, ds in pipeline.node_dependencies.items():
        for d in ds:
            children[d].append(n)
    return children


def namespace_order(pipeline: Pipeline) -> list[Node]:
    """A topological order of ``pipeline``'s nodes that keeps each namespace's nodes together
    wherever the dependencies allow."""
    rank = {n: i for i, n in enumerate(pipeline.nodes)}  # Kedro's own order breaks ties
    deps = {n: set(d) for n, d in pipeline.node_dependencies.items()}
    children = _children(pipeline)
    ready = {n for n, ds in deps.items() if not ds}
    order: list[Node] = []
    last: Node | None = None
    while ready:
        nxt = min(ready, key=lambda n: (-_shared_depth(n.namespace, last.namespace if last else None), rank[n]))
        ready.remove(nxt)
        order.append(nxt)
        last = nxt
        for c in children[nxt]:
            deps[c].discard(nxt)
            if not deps[c]:
                ready.add(c)
    if len(order) != len(rank):  # pragma: no cover - Kedro rejects cyclic pipelines first
        raise RuntimeError("pipeline has a dependency cycle")
    return order


# -- node durations -----------------------------------------------------------------------------------
# Seconds each node took in its latest run, by node name, in NODE_SECONDS (config.py; relative to
# the project root, where ``kedro run`` runs). Wall-clock times: kept apart from every output that must reproduce.
_PROJECT_ROOT: Path | None = None


def set_project_root(path: str | os.PathLike | None) -> None:
    """The Kedro project of this run (the project hook sets it): relative duration files live there."""
    global _PROJECT_ROOT
    _PROJECT_ROOT = Path(path) if path is not None else None


def _resolve(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.is_absolute() else (_PROJECT_ROOT or Path.cwd()) / path


def load_node_seconds(path: str | os.PathLike | None = NODE_SECONDS) -> dict[str, float]:
    """The recorded node durations; empty when there are none (or the file is unreadable: it is a hint)."""
    file = _resolve(path) if path is not None else None
    if file is None or not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        logging.getLogger(__name__).warning("Ignoring node durations in %s (%s); nodes start in namespace order",
                                            path, exc)
        return {}


def record_node_seconds(seconds: dict[str, float], path: str | os.PathLike | None = NODE_SECONDS) -> None:
    """Merge ``seconds`` into ``path`` (atomically); nothing when the project has no ``data/`` folder."""
    if path is None or not seconds or not _resolve(path).parent.parent.is_dir():
        return
    from mlsp_pipelines.datasets.atomic import atomic_path

    merged = {**load_node_seconds(path), **{k: round(float(v), 3) for k, v in seconds.items()}}
    with atomic_path(_resolve(path)) as tmp:
        tmp.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n", encoding="utf-8")


def critical_path_seconds(pipeline: Pipeline, seconds: dict[str, float]) -> dict[Node, float]:
    """Each node's expected duration plus the longest chain of expected durations that waits for it.

    A node never timed counts as the mean of those that were (0 when none was): with no history
    every node ties and the runner keeps the namespace order.
    """
    known = [seconds[n.name] for n in pipeline.nodes if n.name in seconds]
    default = sum(known) / len(known) if known else 0.0
    children = _children(pipeline)
    rank: dict[Node, float] = {}
    for n in reversed(pipeline.nodes):  # topological order reversed: children first
        rank[n] = seconds.get(n.name, default) + max((rank[c] for c in children[n]), default=0.0)
    return rank


class _NodeClock:
    """A hook that times each node of a sequential run (registered by the runner for its run)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        self.started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        if node.name in self.started:
            self.seconds[node.name] = time.perf_counter() - self.started.pop(node.name)


class NamespaceSequentialRunner(SequentialRunner):
    """``SequentialRunner`` in :func:`namespace_order` (each model trained and evaluated in one go);
    records each node's duration in :data:`NODE_SECONDS` for the Dask runner's next start order."""

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        ordered = Pipeline(pipeline.nodes)
        # ``Pipeline.nodes`` (a cached property over ``_toposorted_nodes``) is the order the
        # sequential loop follows; set it to ours (tests/test_tracking.py checks the order is used)
        ordered._toposorted_nodes = namespace_order(pipeline)  # noqa: SLF001
        ordered.__dict__.pop("nodes", None)
        clock = _NodeClock()
        register = getattr(hook_manager, "register", None)  # Kedro's null manager (no hooks) has none
        if register is not None:
            register(clock)
        try:
            super()._run(ordered, catalog, hook_manager, run_id)
        finally:
            if register is not None:
                hook_manager.unregister(clock)
            record_node_seconds(clock.seconds)


# -- Dask ----------------------------------------------------------------------------------------------
#: Short names ``kedro run --runner=...`` accepts for this project's runners (cli.py).
RUNNER_ALIASES = {"dask": "mlsp_pipelines.runner.DaskRunner", "DaskRunner": "mlsp_pipelines.runner.DaskRunner"}


def _hook_key(hook: Any) -> str:
    return f"{type(hook).__module__}.{type(hook).__qualname__}"


def _is_ephemeral(catalog: Any, name: str) -> bool:
    try:
        return bool(getattr(catalog.get(name, fallback_to_runtime_pattern=True), "_EPHEMERAL", False))
    except Exception:  # noqa: BLE001 - not resolvable: Kedro's default is a MemoryDataset
        return True


_WORKER_READY: set[str] = set()


def _bootstrap_worker(package: str | None, logging_config: dict[str, Any] | None) -> None:
    """Kedro's project settings and logging in a worker process (once per process)."""
    if package is None or package in _WORKER_READY:
        return
    from kedro.framework.project import configure_logging, configure_project

    configure_project(package)
    if logging_config:
        configure_logging(logging_config)
    _WORKER_READY.add(package)


def _worker_hooks(states: dict[str, Any], catalog: Any) -> tuple[Any, dict[str, Any]]:
    """A hook manager for one node on a worker: the project's hooks, where a hook can run remotely
    (``for_remote_node``) a fresh instance bound to the driver's state for this node."""
    from kedro.framework.project import settings

    from mlsp_pipelines.config import hook_manager

    hooks, remote = [], {}
    for hook in settings.HOOKS:
        make = getattr(type(hook), "for_remote_node", None)
        if make is not None:
            hook = make(states.get(_hook_key(hook)), catalog)
            remote[_hook_key(hook)] = hook
        hooks.append(hook)
    return hook_manager(tuple(hooks)), remote


def _run_node_on_worker(node: Node, catalog_blob: bytes, upstream: dict[str, dict[str, Any]],
                        states: dict[str, Any], project: tuple[str | None, dict[str, Any] | None],
                        is_async: bool, run_id: str | None) -> dict[str, Any]:
    """Run ``node`` through Kedro's ``Task`` (dataset and node hooks included) on a Dask worker.

    In-memory inputs arrive as the results of their producers' tasks (``upstream``: dataset name →
    that task's result), so Dask moves them worker to worker; in-memory outputs are this task's
    result. File datasets are read and written by the worker itself (atomically: a worker that
    dies leaves no partial file).
    """
    import pickle
    import time

    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner.task import Task

    t0 = time.perf_counter()
    _bootstrap_worker(*project)
    full = pickle.loads(catalog_blob)  # a private copy per task: nothing leaks between tasks
    datasets: dict[str, Any] = {}
    ephemeral: list[str] = []
    for name in dict.fromkeys([*node.inputs, *node.outputs]):
        ds = full.get(name, fallback_to_runtime_pattern=True)
        if getattr(ds, "_EPHEMERAL", False) and not name.startswith("params:"):
            fresh = MemoryDataset(copy_mode=getattr(ds, "_copy_mode", None), metadata=getattr(ds, "metadata", None))
            if name in upstream:
                fresh.save(upstream[name]["data"][name])
            elif name in node.inputs and ds.exists():
                fresh.save(ds.load())
            ds = fresh
            ephemeral.append(name)
        datasets[name] = ds
    catalog = DataCatalog(datasets=datasets, validation_enabled=False)
    hook_manager, remote = _worker_hooks(states, full)
    Task(node=node, catalog=catalog, hook_manager=hook_manager, is_async=is_async, run_id=run_id).execute()
    data = {name: catalog.load(name) for name in node.outputs if name in ephemeral}
    from mlsp_pipelines import cluster

    meta = {"hooks": {key: hook.remote_result() for key, hook in remote.items()},
            "worker": cluster.worker_report(), "seconds": time.perf_counter() - t0}
    return {"data": data, "meta": meta}


def _least_busy(workers: dict[str, dict[str, Any]], load: Counter) -> str | None:
    """The address of the worker with the fewest of our nodes per thread (the first on ties)."""
    if not workers:
        return None
    return min(workers, key=lambda w: load[w] / max(1, int(workers[w].get("nthreads", 1))))


STALL_CHECK_S = 10.0  # how often the driver looks for tasks a dead worker left unrunnable


def _release_dead_restrictions(dask_scheduler: Any) -> list[str]:
    """Runs on the scheduler: let a ``no-worker`` task whose only allowed worker is gone run anywhere.

    A node is sent to the least busy worker with ``allow_other_workers=True``. When that worker
    dies and the node's lost result has to be recomputed while no worker is up, the task waits in
    ``no-worker``; distributed (2026.8) re-checks such tasks when a worker joins, but only against
    their worker restrictions, ignoring ``allow_other_workers``, and the restarted worker has a new
    address: the task would wait forever and the run hang. Dropping the dead restriction (loose
    ones only) and asking for ``processing`` again is what ``allow_other_workers`` promised.
    """
    live = set(dask_scheduler.workers)
    freed = []
    for ts in list(dask_scheduler.unrunnable):
        if ts.loose_restrictions and ts.worker_restrictions and not set(ts.worker_restrictions) & live:
            ts.worker_restrictions = None
            freed.append(ts.key)
    if freed and dask_scheduler.running:
        dask_scheduler.transitions({key: "processing" for key in freed}, stimulus_id=f"mlsp-release-{uuid.uuid4().hex[:8]}")
    return [str(k) for k in freed]


def _wait_first(client: Any, futures: list[Any], logger: logging.Logger) -> set[Any]:
    """The futures that finished first; every :data:`STALL_CHECK_S` of waiting, tasks left
    unrunnable by a dead worker are released (:func:`_release_dead_restrictions`)."""
    from distributed import wait

    while True:
        try:
            return wait(futures, timeout=STALL_CHECK_S, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            freed = client.run_on_scheduler(_release_dead_restrictions)
            if freed:
                logger.warning("Dask: %s waited for a worker that died; released to any worker", freed)


def _meta_of(result: dict[str, Any]) -> dict[str, Any]:
    return result["meta"]


def _data_of(result: dict[str, Any], name: str) -> Any:
    return result["data"][name]


class DaskRunner(AbstractRunner):
    """Independent nodes at once on a Dask cluster; each node runs through Kedro's ``Task`` on a worker.

    Kedro's documented DaskRunner design (a task per node, hooks rebuilt on the worker because a
    hook manager cannot be pickled), with what this project needs on top:

    * in-memory datasets travel as task results, worker to worker, and are released when their
      last reader is done; file datasets are read and written by the workers (same paths);
    * nodes are submitted as soon as their inputs exist, at most as many at once as the cluster
      has worker threads: first the nodes of a namespace already started (so each model's nodes
      run back to back and its MLflow run lasts about as long as its own work), then the one with
      the longest :func:`critical_path_seconds` by the durations in ``node_seconds`` of
      ``dask.yml`` (recorded by every run), then :func:`namespace_order`;
    * hooks with a remote side (``MlflowHook``) hand each task what it needs (the parent run, the
      model's run) and take back what the task learnt; runs are opened and closed by the driver;
    * a node error fails the run at once (``retries`` in ``dask.yml`` re-runs it); a worker that
      dies has its task retried on another worker ``allowed_failures`` times, then the run fails
      naming the node. Outputs are written atomically, so nothing is half-written either way.

    ``kedro run --runner=dask`` (or the full class path) with ``dask.yml`` of the environment
    (``conf/dask``: the scheduler address; none: a LocalCluster here); ``--runner-params
    address=tcp://...,n_workers=2,torch_threads=1`` overrides it. ``client`` takes an existing
    ``distributed.Client`` (tests, notebooks).
    """

    def __init__(self, is_async: bool = False, address: str | None = None, n_workers: int | None = None,
                 threads_per_worker: int | None = None, torch_threads: int | None = None,
                 client: Any = None) -> None:
        super().__init__(is_async=is_async)
        self._overrides = {"scheduler_address": address, "n_workers": n_workers,
                           "threads_per_worker": threads_per_worker, "torch_threads": torch_threads}
        self._client = client

    def _get_executor(self, max_workers: int) -> None:  # noqa: ARG002 - the cluster is the executor
        return None

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        from contextlib import nullcontext

        from mlsp_pipelines import cluster

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RuntimeError("DaskRunner under torchrun: run the Dask driver once (`kedro run --runner=dask`); "
                               "DistributedDataParallel training runs under torchrun with the default runner.")
        settings = cluster.resolve(self._overrides)
        with nullcontext(self._client) if self._client is not None else cluster.connect(settings) as client:
            self._prepare_workers(client, settings)
            with client.as_current():  # distributed.wait looks for the current client
                self._run_on(client, settings, pipeline, catalog, hook_manager, run_id)

    def _prepare_workers(self, client: Any, settings: Any) -> None:
        from mlsp_pipelines import cluster

        client.wait_for_workers(1, timeout=120)
        answers = client.register_plugin(cluster.WorkerSetup(settings.torch_threads, settings.check_workers),
                                          name=cluster.WorkerSetup.name)
        bad = {w: a for w, a in (answers or {}).items() if isinstance(a, dict) and a.get("status") == "error"}
        if bad:
            worker, answer = next(iter(bad.items()))
            raise RuntimeError(f"Dask worker set-up failed on {len(bad)} worker(s), e.g. {worker}: "
                               f"{answer.get('exception_text') or answer.get('exception')}")
        workers = list(client.scheduler_info()["workers"])
        client.gather([client.submit(cluster.warm_up, workers=[w], pure=False, key=f"warm-up-{uuid.uuid4().hex[:8]}")
                       for w in workers])
        reports = client.run(cluster.worker_report)
        for address, report in reports.items():
            if report.get("malloc"):
                self._logger.warning("Dask worker %s: %s", address, report["malloc"])
        self._logger.info("Dask: %d worker(s) ready (%s)", len(reports),
                          "; ".join(f"{w}: pid {r['pid']}, torch threads {r['torch_threads']}" for w, r in reports.items()))

    def _run_on(self, client: Any, settings: Any, pipeline: Pipeline, catalog: Any, hook_manager: Any,
                run_id: str | None) -> None:
        import cloudpickle

        try:
            from kedro.framework.project import LOGGING, PACKAGE_NAME

            project = (PACKAGE_NAME, dict(LOGGING) if LOGGING else None)
        except ImportError:  # pragma: no cover - outside a Kedro project
            project = (None, None)
        nodes = pipeline.nodes
        order = {n: i for i, n in enumerate(namespace_order(pipeline))}
        history = load_node_seconds(settings.node_seconds)
        expected = critical_path_seconds(pipeline, history)
        started: set[str | None] = set()  # namespaces with a node submitted
        took: dict[str, float] = {}
        deps = {n: set(d) for n, d in pipeline.node_dependencies.items()}
        producers = {out: n for n in nodes for out in n.outputs}
        transfer = {name for name in producers if _is_ephemeral(catalog, name)}
        readers = Counter(name for n in nodes for name in n.inputs if name in transfer)
        blob = cloudpickle.dumps(catalog)  # datasets (paths, metadata) and parameters; no data of ours
        plugins = getattr(hook_manager, "get_plugins", lambda: None)() or ()  # Kedro's null manager: None
        remote_hooks = [p for p in plugins
                        if hasattr(p, "remote_node_state") and hasattr(type(p), "for_remote_node")]

        todo, done = set(nodes), set()
        results: dict[Node, Any] = {}
        running: dict[Any, Node] = {}
        placed: dict[Node, str] = {}  # the worker each node in flight was sent to
        try:
            while todo or running:
                workers = client.scheduler_info()["workers"]
                capacity = max(1, sum(w.get("nthreads", 1) for w in workers.values()))
                ready = sorted((n for n in todo if deps[n] <= done),
                               key=lambda n: (n.namespace not in started, -expected[n], order[n]))
                for node in ready[: max(0, capacity - len(running))]:
                    todo.discard(node)
                    started.add(node.namespace)
                    states = {_hook_key(p): p.remote_node_state(node) for p in remote_hooks}
                    upstream = {name: results[producers[name]] for name in node.inputs if name in transfer}
                    key = f"{node.name}-{uuid.uuid4().hex[:8]}"
                    priority = len(order) - order[node]
                    # The least busy worker, by our own count: Dask would put every node that reads
                    # the same in-memory input (all the models of a task) on the worker holding it,
                    # one after another, because a node's duration is unknown to it until it ran.
                    target = _least_busy(workers, Counter(placed.values()))
                    fut = client.submit(_run_node_on_worker, node, blob, upstream, states, project,
                                        self._is_async, run_id, key=key, priority=priority,
                                        retries=settings.retries, pure=False,
                                        workers=[target] if target else None, allow_other_workers=True)
                    if target:
                        placed[node] = target
                    results[node] = fut
                    running[client.submit(_meta_of, fut, key=f"meta-{key}", priority=priority, pure=False)] = node
                    self._logger.info("Submitted node: %s", node.name)
                if not running:
                    raise RuntimeError(f"Unable to schedule {sorted(n.name for n in todo)}: their inputs are never made")
                finished = _wait_first(client, list(running), self._logger)
                for meta_future in finished:
                    node = running.pop(meta_future)
                    placed.pop(node, None)
                    try:
                        meta = meta_future.result()
                    except BaseException as exc:
                        if self._collateral_death(exc, results[node]):
                            # the small task that fetches the node's metadata was queued on a worker that died
                            # running *another* node; the node itself was not at fault: ask again
                            again = client.submit(_meta_of, results[node], key=f"meta-{node.name}-{uuid.uuid4().hex[:8]}",
                                                  priority=len(order) - order[node], pure=False)
                            running[again] = node
                            self._logger.info("Node %s: its result was lost with a worker that died running another "
                                              "node; fetching it again", node.name)
                            continue
                        exc = self._own_failure(exc, results[node])
                        for p in remote_hooks:
                            p.remote_node_done(node, None, exc)
                        raise self._node_failure(node, exc) from exc
                    for p in remote_hooks:
                        p.remote_node_done(node, meta["hooks"].get(_hook_key(p)), None)
                    done.add(node)
                    took[node.name] = meta["seconds"]
                    self._logger.info("Completed node: %s (%.1f s on worker pid %s)", node.name, meta["seconds"],
                                      meta["worker"]["pid"])
                    self._logger.info("Completed %d out of %d tasks", len(done), len(nodes))
                    self._keep_outputs(client, node, results, pipeline, catalog, transfer)
                    for name in node.inputs:  # release in-memory data nobody will read any more
                        if name in transfer:
                            readers[name] -= 1
                            producer = producers[name]
                            if all(readers[o] <= 0 for o in producer.outputs if o in transfer) \
                                    and not (set(producer.outputs) & pipeline.outputs()):
                                results.pop(producer, None)
        except BaseException:
            client.cancel([*running, *results.values()], force=True)
            self._suggest_resume_scenario(pipeline, done, catalog)
            raise
        finally:
            record_node_seconds(took, settings.node_seconds)

    @staticmethod
    def _keep_outputs(client: Any, node: Node, results: dict[Node, Any], pipeline: Pipeline, catalog: Any,
                      transfer: set[str]) -> None:
        """In-memory outputs of the whole pipeline go to the driver's catalog (``run`` returns them)."""
        for name in set(node.outputs) & pipeline.outputs() & transfer:
            catalog.save(name, client.submit(_data_of, results[node], name, pure=False).result())

    @staticmethod
    def _collateral_death(exc: BaseException, node_future: Any) -> bool:
        """True when a metadata task died with a worker while the node's own task is unharmed.

        A worker runs one task at a time; the metadata task of a finished node waits on the worker
        that holds the node's result, and dies with it when another node kills that worker. Dask
        counts that against the metadata task, which would otherwise blame the wrong node.
        """
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker) and str(getattr(exc, "task", "")).startswith("meta-") \
            and node_future.status != "error"

    @staticmethod
    def _own_failure(exc: BaseException, node_future: Any) -> BaseException:
        """The node's own error when its task failed (the metadata task only inherits it)."""
        if node_future.status == "error":
            own = node_future.exception()
            if own is not None:
                return own
        return exc

    @staticmethod
    def _node_failure(node: Node, exc: BaseException) -> BaseException:
        """The worker-death case made readable; a node's own error is raised as it is."""
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            return RuntimeError(
                f"node {node.name} failed: the Dask worker running it died (KilledWorker: {exc}); it was retried "
                "up to allowed_failures times (dask.yml). Nothing it writes is half-written (outputs are saved "
                "atomically); see the worker's log for the cause (memory limit, a crash, a killed process).")
        return exc
