"""Run a job's rows through workers, here or on Ray, and hand every result to the sink in this process.

A *worker class* is constructed once per process that computes (``worker_class(settings)``: it loads
the model) and answers ``process(row) -> {"stem", "error", "files": {name: bytes}}``. The *sink*
(``accept(result, row)``) writes in the driver process, so a local run and a Ray run write their
files with the same code, and a Ray run writes where the command runs.

- :func:`run_local`: one worker in this process, rows in order.
- :func:`run_ray`: Ray Data. The rows become a dataset (one block per row up to ``MAX_BLOCKS``, so
  actors share the work evenly and a lost actor costs only the rows it held); ``map_batches`` runs :class:`RayWorker` (a callable
  class holding one worker, hence one loaded model, per actor) on a fixed pool of ``actors`` actors
  with ``num_cpus`` / ``num_gpus`` each; the driver iterates the results as they come. Ray Data
  restarts an actor that dies and retries its unfinished rows (``max_restarts`` / ``max_task_retries``
  -1, its default for actor pools), so a killed worker loses nothing.

Ray is optional: it is imported only here, only by :func:`run_ray`.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Callable

RAY_INSTALL = "pip install -r requirements-batch.txt (in the pack's folder), or pip install 'ray[data]>=2.60.0'"


MAX_BLOCKS = 1000


class RayMissing(RuntimeError):
    pass


def progress_bar(total: int, what: str, enabled: bool = True):
    """tqdm bar on stderr with the rate and the time left (tqdm comes with huggingface_hub)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="img", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                smoothing=0.1)


class Timing:
    """When a run started (before any model loads), got its first result, and ended (perf_counter s)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.first = self.end = None

    def result(self) -> None:
        self.end = time.perf_counter()
        if self.first is None:
            self.first = self.end

    def summary(self, count: int) -> str:
        """"in 35.2 s (first result after 12.1 s, then 1.90 images/s)": the time to the first result is
        the start-up (imports, Ray, model loads) plus one image; the rate is the steady one after it."""
        if self.end is None:
            return "in 0 s"
        text = f"in {self.end - self.start:.1f} s (first result after {self.first - self.start:.1f} s"
        if count > 1 and self.end > self.first:
            text += f", then {(count - 1) / (self.end - self.first):.2f} images/s"
        return text + ")"


def run_local(rows: list[dict], worker_class, settings: dict, accept: Callable, *, progress: bool = True) -> Timing:
    timing = Timing()
    worker = worker_class(settings)
    bar = progress_bar(len(rows), "matting", progress)
    try:
        for row in rows:
            accept(worker.process(row), row)
            timing.result()
            bar.set_postfix_str(row["stem"], refresh=False)
            bar.update(1)
    finally:
        bar.close()
        close = getattr(worker, "close", None)
        if close is not None:
            close()
    return timing


class RayWorker:
    """The callable class of ``map_batches``: one worker per actor, built when the actor starts."""

    def __init__(self, worker_class, settings: dict):
        self.worker = worker_class(settings)

    def __call__(self, batch: dict) -> dict:
        stems, payloads = [], []
        for i in range(len(batch["row"])):
            row = json.loads(batch["row"][i])
            result = self.worker.process(row)
            stems.append(result["stem"])
            payloads.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        import numpy as np

        return {"stem": np.array(stems, dtype=object), "result": np.array(payloads, dtype=object)}


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayMissing(f"--ray needs Ray (with Ray Data), which is not installed here; install it with: "
                         f"{RAY_INSTALL}") from None
    return ray


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address``, or start a local Ray when None. Reuses a Ray this process
    already started (then returns False: not ours to shut down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    return True


def _worker_env() -> dict:
    """Ray workers import the pack as this process does: the folder holding it goes on their
    PYTHONPATH (on a cluster that folder must hold the pack on every node, as the inputs must)."""
    pack = sys.modules[__name__.split(".")[0]]
    holder = str(Path(list(pack.__path__)[0]).parent)  # as imported: a symlinked pack keeps its name
    paths = [holder] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != holder]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def _warn_when_short(ray, actors: int, num_cpus: float, num_gpus: float) -> None:
    """Say so when the cluster cannot hold the actor pool now: Ray waits for the resources (an
    autoscaling cluster may add them), which looks like a hang otherwise."""
    have = ray.cluster_resources()
    for what, per_actor in (("CPU", num_cpus), ("GPU", num_gpus)):
        need = actors * per_actor
        if need > have.get(what, 0) + 1e-9:
            print(f"warning: {actors} actors x {per_actor:g} {what} need {need:g} {what}s but the Ray cluster has "
                  f"{have.get(what, 0):g}; the job waits until the cluster has them (lower --actors or "
                  f"--{what.lower()}s-per-actor to run now)", file=sys.stderr, flush=True)


def run_ray(rows: list[dict], worker_class, settings: dict, accept: Callable, *, address: str | None = None,
            actors: int = 1, num_cpus: float = 1, num_gpus: float = 0, progress: bool = True) -> Timing:
    ray = import_ray()
    timing = Timing()
    started_here = connect(address)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        by_stem = {row["stem"]: row for row in rows}
        if not rows:
            return timing
        _warn_when_short(ray, actors, num_cpus, num_gpus)
        # one input per block (a block is what a retry redoes), up to MAX_BLOCKS for very long jobs
        dataset = ray.data.from_items([{"row": json.dumps(row)} for row in rows],
                                      override_num_blocks=min(len(rows), MAX_BLOCKS))
        results = dataset.map_batches(
            RayWorker,
            fn_constructor_args=(worker_class, settings),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=int(actors)),
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            runtime_env={"env_vars": _worker_env()},
        )
        bar = progress_bar(len(rows), f"matting on Ray ({actors} actor{'s' if actors != 1 else ''})", progress)
        try:
            for out in results.iter_rows():
                result = pickle.loads(out["result"])
                accept(result, by_stem[result["stem"]])
                timing.result()
                bar.set_postfix_str(result["stem"], refresh=False)
                bar.update(1)
        finally:
            bar.close()
        return timing
    finally:
        if started_here:
            ray.shutdown()
