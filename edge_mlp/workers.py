"""Several artifacts at once: one spawned process per worker, their progress relayed to the caller.

Why processes: a conversion is mostly single-threaded Python (ExecuTorch's XNNPACK passes, each
re-tracing the whole graph; litert-torch; coremltools' MIL passes), so one process converts on one
core whatever the machine has. Spawned, not forked: the parent has torch and its thread pools loaded.

Stopping is the parent's job: on Ctrl-C / SIGTERM or a worker's error it terminates the workers,
kills what is still alive after a grace period, and removes the staging folders they own (named
with the parent's pid, `fileio.set_temp_owner`), so nothing half-written survives a worker that
died inside native code.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .errors import EdgeMlpError
from .quiet import mute_process

# Memory the default worker count keeps available per worker: twice the largest peak we measured
# (as_mlp_mobile at 224, int8, peak RSS of one conversion: LiteRT 1.06 GB, ExecuTorch 0.93 GB,
# Core ML 0.80 GB), for larger models and input sizes.
WORKER_MEMORY_BYTES = 2 << 30
STOP_GRACE_S = 1.5  # from SIGTERM to SIGKILL; the CLI's interrupt watchdog acts at 3 s


class Progress(Protocol):
    def stage(self, target: str, stage: str, done: bool, seconds: float) -> None: ...


def default_workers(tasks: int) -> int:
    """One per task, at most one per core and one per WORKER_MEMORY_BYTES of available memory."""
    limit = min(tasks, _cpus())
    available = _available_memory()
    if available is not None:
        limit = min(limit, available // WORKER_MEMORY_BYTES)
    return max(1, limit)


def _cpus() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # not Linux: cores alone decide


class _PipeProgress:
    """A worker's Progress: each stage event goes to the parent, which draws it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def stage(self, target: str, stage: str, done: bool, seconds: float) -> None:
        self.conn.send(("stage", (target, stage, done, seconds)))


def _raise_interrupt(signum: int, frame: Any) -> None:
    # Muted first, for good (quiet.mute_process): Ctrl-C reaches the worker and the parent's SIGTERM
    # follows; one tripped before this handler made it SIG_IGN is reported by Python as "OSError:
    # Signal 15 ignored due to race condition" with a traceback, which must go nowhere, also when
    # it lands inside a quiet.native_stderr block that would restore and replay the stderr.
    mute_process()
    for other in _SIGNALS:  # once: a second signal must not break the unwinding
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt  # unwinds through the worker's staging folders, which remove themselves


def _thread_local_tqdm_lock() -> None:
    """tqdm's default write lock is a multiprocessing RLock, whose semaphore a spawned process
    registers with the resource tracker; a worker that the parent kills never unregisters it, and
    the tracker warns about a leaked semaphore when the CLI exits. A worker's bars are its own."""
    try:
        import threading

        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def _quiet_unraisable(info: Any) -> None:
    """An interrupt inside a finalizer cannot propagate: the parent is stopping this worker anyway."""
    if not isinstance(info.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(info)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _worker_main(fn: Callable[[Any, Progress], Any], conn: Any, threads: int, owner: int) -> None:
    """Tasks come from the parent one at a time over `conn` (None: stop); stage events, results
    and the first error go back over it. A pipe per worker, not a multiprocessing Queue: a Queue's
    semaphores make the resource tracker warn about leaks when the CLI exits hard after Ctrl-C."""
    sys.unraisablehook = _quiet_unraisable
    for signum in _SIGNALS:
        signal.signal(signum, _raise_interrupt)
    _thread_local_tqdm_lock()
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # blocked since the start (_start): handled now
        import torch

        from .fileio import set_temp_owner

        set_temp_owner(owner)
        torch.set_num_threads(threads)  # the workers share the cores
        progress = _PipeProgress(conn)
        while (task := conn.recv()) is not None:
            index, payload = task
            try:
                conn.send(("done", (index, fn(payload, progress))))
            except Exception as err:  # noqa: BLE001 - handed to the parent, which raises it
                conn.send(("failed", (index, _portable(err))))
                return
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # stopped by the parent, or the parent is gone


def _portable(err: Exception) -> Exception:
    """The error as the parent can raise it: itself if it pickles (a user error keeps its one-line
    message), else a RuntimeError that carries the worker's traceback."""
    import pickle

    if isinstance(err, EdgeMlpError):
        try:
            pickle.loads(pickle.dumps(err))
            return err
        except Exception:  # noqa: BLE001
            return EdgeMlpError(str(err))
    return RuntimeError(f"a conversion worker failed:\n{''.join(traceback.format_exception(err)).rstrip()}")


def run(fn: Callable[[Any, Progress], Any], payloads: Sequence[Any], workers: int, progress: Progress | None,
        folders: Sequence[Path], labels: Sequence[str] | None = None) -> list[Any]:
    """fn(payload, progress) for each payload, in `workers` spawned processes, started in payload
    order; results in payload order. `fn` must be a module-level function. `folders`: where the
    workers stage files (removed there if a worker has to be killed). `labels`: what the progress
    lines of each payload are called (default: what the worker says). The first error stops every
    worker and is raised."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    threads = max(1, _cpus() // workers)
    pending = list(enumerate(payloads))
    results: dict[int, Any] = {}
    processes: dict[Any, Any] = {}  # the parent's end of each worker's pipe -> its process
    working: dict[Any, int] = {}  # pipe of each worker that has a task -> the task's index
    try:
        for i in range(min(workers, len(payloads))):
            here, there = context.Pipe()
            process = context.Process(target=_worker_main, args=(fn, there, threads, os.getpid()),
                                      name=f"edge-mlp-worker-{i}", daemon=True)
            processes[here] = process
            _start(process)
            there.close()  # the worker's end lives in the worker: its exit is our EOF
            _feed(here, pending, working)
        while len(results) < len(payloads):
            for conn in wait(list(working), timeout=1.0):
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    raise _died(processes[conn], len(results), len(payloads)) from None
                if kind == "stage":
                    if progress is not None:
                        target, *rest = payload
                        progress.stage(labels[working[conn]] if labels else target, *rest)
                elif kind == "done":
                    results[payload[0]] = payload[1]
                    _feed(conn, pending, working)
                else:
                    raise payload[1]
        for process in processes.values():
            process.join()
        return [results[i] for i in range(len(payloads))]
    finally:
        _stop(list(processes.values()), folders)
        for conn in processes:
            conn.close()


def _start(process: Any) -> None:
    """Start a worker with SIGINT / SIGTERM blocked, as multiprocessing starts its resource tracker:
    a Ctrl-C reaches the whole process group, and one that arrives while the child's interpreter
    starts up ends it with a "Fatal Python error" on the terminal. The worker unblocks them once its
    handlers are in place; what arrived at the parent meanwhile is delivered when it unblocks here."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # it unblocks these signals itself when it starts
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _feed(conn: Any, pending: list[tuple[int, Any]], working: dict[Any, int]) -> None:
    """The worker's next task, or None (stop) when none is left."""
    if pending:
        working[conn] = pending[0][0]
        conn.send(pending.pop(0))
    else:
        conn.send(None)
        working.pop(conn, None)


def _died(process: Any, done: int, total: int) -> EdgeMlpError:
    """A worker that ended without reporting (killed by the OS, e.g. out of memory) fails the run."""
    process.join(5.0)
    code = process.exitcode
    how = (f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}")
    hint = " (out of memory? pass --jobs 1)" if code == -signal.SIGKILL else ""
    return EdgeMlpError(f"a conversion worker stopped ({how}) after {done} of {total} artifacts{hint}")


def _stop(processes: list[Any], folders: Sequence[Path]) -> None:
    """Terminate the workers that still run, kill those that do not stop, remove their staging
    (also that of a worker that died on its own: a Ctrl-C reaches the workers with the parent, and
    a worker that aborts while unwinding leaves its staging behind)."""
    from .fileio import owned_temp_paths

    alive = [p for p in processes if p.pid is not None and p.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in alive:
        if process.is_alive():
            process.kill()
            process.join()
    import shutil

    for folder in folders:  # after a complete run the workers have published all they staged
        for path in owned_temp_paths(folder, os.getpid()):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
