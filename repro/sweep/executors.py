"""Executors: where a sweep's cells run. `local` runs them in this process, one at a time (what the scripts do);
`ray` makes each cell a Ray task with its resource request, scheduled on any node of the cluster as cells finish.

Both run the same `execute` on each work item: the existing driver on one cell, its output (progress bars,
tracebacks) appended to the cell's log under <results>/.resume/sweep/logs/, results written by the driver
with its atomic writes into the shared results folder, a failure recorded under <results>/.resume/sweep/failed/
with its error line. The scheduler (`run_sweep`) submits every runnable cell, counts them on one progress bar
as they finish, and submits a group's assembly (`repro.sweep.cells.Assembly`) when its last cell is done.

Ray (`pip install ptuning-repro[distributed]`) is imported only by `RayExecutor`. A worker that dies (a lost
node, an OOM kill) makes Ray rerun its task (`max_retries`); the rerun resumes from the unit's checkpoint in
the run folder with the same numbers. An exception inside a cell is not retried: it is the same error next
time, so it is recorded as the cell's failure. Multi-node: every node needs the suite installed, and the data
and the results folder at the same paths on a shared filesystem.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Optional, Sequence

from tqdm.auto import tqdm

from repro.errors import ConfigError
from repro.experiment.engine import Workspace
from repro.sweep.cells import Assembly, Cell, Group, WorkItem, run_item
from repro.sweep.state import assembled, cell_state, clear_failure, log_path, write_failure

ENGINES = ("local", "ray")
# Variables a Ray worker needs from the driver's environment when this process starts the cluster.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "REPRO_DATA", "REPRO_CACHE_DIR",
                 "PYTHONPATH", "HF_HOME")


@dataclass
class Outcome:
    """What became of one work item."""

    key: str
    ok: bool
    error: str = ""
    wall_time_s: float = 0.0
    host: str = ""


def execute(item: WorkItem, where: dict[str, Any]) -> Outcome:
    """Run one cell or assembly with its output appended to its log; an exception becomes its failure record."""
    ws = Workspace(**where)
    log = log_path(ws, item.key)
    log.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    started = time.perf_counter()
    with open(log, "a", encoding="utf-8") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        print(f"== {item.key} on {host} (pid {os.getpid()}) at {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
        try:
            run_item(item, where)
        except Exception as err:  # noqa: BLE001 - any error of the run is the cell's failure, recorded below
            import traceback

            traceback.print_exc()
            return Outcome(item.key, False, write_failure(ws, item.key, err), time.perf_counter() - started, host)
        seconds = time.perf_counter() - started
        print(f"== done in {seconds:.1f} s", flush=True)
    clear_failure(ws, item.key)
    return Outcome(item.key, True, "", seconds, host)


class LocalExecutor:
    """In this process, one item at a time, in order; an assembly goes first once it is due."""

    name = "local"

    def __init__(self, where: dict[str, Any]) -> None:
        self.where = where
        self.queue: deque[WorkItem] = deque()

    def submit(self, item: WorkItem) -> None:
        if isinstance(item, Assembly):
            self.queue.appendleft(item)
        else:
            self.queue.append(item)

    def results(self) -> Iterator[tuple[WorkItem, Outcome]]:
        while self.queue:
            item = self.queue.popleft()
            yield item, execute(item, self.where)

    def close(self) -> None:
        pass


class RayExecutor:
    """Each item a Ray task asking `cpus` CPUs and `gpus` GPUs; results come back as tasks finish."""

    name = "ray"

    def __init__(self, where: dict[str, Any], *, address: Optional[str] = None, cpus: float = 1, gpus: float = 0,
                 max_retries: int = 3) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--engine ray needs Ray: pip install 'ptuning-repro[distributed]' (or ray>=2.9)") from None
        self.ray = ray
        self.started_here = False
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, log_to_driver=False,
                     include_dashboard=False)
            self.started_here = True
        self.where = cell_where(where, self.name, cpus)
        self.remote = ray.remote(execute).options(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries,
                                                  retry_exceptions=False)
        self.pending: dict[Any, WorkItem] = {}

    def submit(self, item: WorkItem) -> None:
        self.pending[self.remote.remote(item, self.where)] = item

    def results(self) -> Iterator[tuple[WorkItem, Outcome]]:
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1)
            item = self.pending.pop(ready[0])
            try:
                outcome = self.ray.get(ready[0])
            except self.ray.exceptions.RayError as err:  # the worker died more often than max_retries allows
                ws = Workspace(**self.where)
                outcome = Outcome(item.key, False, write_failure(ws, item.key, _ray_error_line(err)))
            yield item, outcome

    def close(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref)
        if self.started_here:
            self.ray.shutdown()


def _ray_error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:500]


def cell_where(where: dict[str, Any], engine: str, cpus: float = 1) -> dict[str, Any]:
    """The workspace a cell runs with. Under Ray, without --threads, torch gets the CPUs the cell asked for, not
    the node's count; the thread count is part of the fingerprint, so `--plan` reads states with this too."""
    if engine == "ray" and where.get("threads", 0) == 0 and cpus >= 1:
        return {**where, "threads": int(cpus)}
    return dict(where)


def make_executor(engine: str, where: dict[str, Any], **options: Any):
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if engine == "local":
        return LocalExecutor(where)
    return RayExecutor(where, **options)


@dataclass
class SweepReport:
    """What a `--run` did."""

    ran: list[Outcome]
    failed: list[Outcome]
    assembled: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"ran": [asdict(o) for o in self.ran], "failed": [asdict(o) for o in self.failed],
                "assembled": self.assembled}


def run_sweep(groups: Sequence[Group], executor, where: dict[str, Any], *, quiet: bool = False) -> SweepReport:
    """Run every cell that is not done (pending, failed, stale), then each group's assembly once its cells are
    all done; one progress bar over the cells."""
    ws = Workspace(**where)
    outstanding: dict[str, set[str]] = {}
    todo: list[Cell] = []
    for group in groups:
        cells = [c for c in group.cells() if cell_state(c, ws).runnable]
        outstanding[group.key] = {c.key for c in cells}
        todo += cells
    by_key = {g.key: g for g in groups}
    report = SweepReport([], [], [])
    broken: set[str] = set()
    for group in groups:  # finished earlier but never summarised (e.g. interrupted before its assembly)
        if not outstanding[group.key] and not assembled(group, ws):
            executor.submit(group.assembly())
    for cell in todo:
        executor.submit(cell)
    bar = tqdm(total=len(todo), desc=f"sweep ({executor.name})", unit="cell", disable=quiet, file=sys.stderr)
    try:
        for item, outcome in executor.results():
            if isinstance(item, Assembly):
                if outcome.ok:
                    report.assembled.append(item.group.key)
                else:
                    report.failed.append(outcome)
                continue
            bar.update(1)
            report.ran.append(outcome)
            group_key = item.group.key
            if not outcome.ok:
                report.failed.append(outcome)
                broken.add(group_key)
                bar.set_postfix(failed=len(report.failed))
                continue
            outstanding[group_key].discard(item.key)
            if not outstanding[group_key] and group_key not in broken:
                executor.submit(by_key[group_key].assembly())
    finally:
        bar.close()
        executor.close()
    return report
