"""Executors: where candidate evaluations run. One interface,

    executor.run(requests: list[EvalRequest]) -> list[EvalResult]   # same order

and three implementations, picked by `--executor`:

  * `local`       one after another in this process (the default);
  * `subprocess`  K worker processes on this machine (multiprocessing 'spawn'), one GPU
                  each when GPUs exist (`CUDA_VISIBLE_DEVICES`); a worker is recycled after
                  `max_tasks_per_worker` candidates (keeps memory flat); a worker that dies
                  (kill -9, out of memory, `os._exit`) is restarted and its candidate retried
                  up to `max_retries` times, then recorded `failed` with the reason;
  * `ray`         Ray tasks with `num_cpus` / `num_gpus` per candidate on a local or remote
                  cluster (`--ray_address`); parent weights go through the object store and
                  trained weights come back through it, so workers need no shared disk for them.

Results never depend on the executor: a candidate is a pure function of its request
(`search.evaluate`), so for the same seed and `--parallel` all three give the same
candidates and, on CPU with `--deterministic_ops`, the same accuracies. No executor raises
for a bad candidate: an exception, a diverged loss or a dead worker becomes a `failed`
record with a one-line `reason`.

    with make_executor("subprocess", parallel=2) as ex:
        results = ex.run([req_a, req_b])

This module imports no TensorFlow at load time (spawned workers set their device first).
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
import time
from multiprocessing import connection as mp_connection
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from eatnas_tf.errors import one_line

if TYPE_CHECKING:  # pragma: no cover
    from eatnas_tf.search.evaluate import EvalRequest, EvalResult

EXECUTORS = ("local", "subprocess", "ray")


def failed_result(req: "EvalRequest", reason: str) -> "EvalResult":
    """`search.evaluate.failed_result` (imported late: no TensorFlow at load time)."""
    from eatnas_tf.search import evaluate

    return evaluate.failed_result(req, reason)


def _default_evaluate():
    from eatnas_tf.search.evaluate import evaluate

    return evaluate


def safe_evaluate(fn: Optional[Callable], req: "EvalRequest", **kwargs) -> "EvalResult":
    """`fn(req, **kwargs)`, with anything it raises turned into a failed result."""
    try:
        return (fn or _default_evaluate())(req, **kwargs)
    except Exception as e:  # noqa: BLE001 - a bad candidate never stops the search
        return failed_result(req, one_line(e))


def _setup_tf(deterministic_ops: bool, threads: Optional[int]) -> None:
    import tensorflow as tf

    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised (the local executor in a used process)
            pass


# -- local ------------------------------------------------------------------------------
class LocalExecutor:
    """Evaluates requests one after another in this process."""

    parallel = 1

    def __init__(self, verbose: int = 0, strategy=None, evaluate_fn: Optional[Callable] = None):
        self.verbose = verbose
        self.tf_strategy = strategy
        self.evaluate_fn = evaluate_fn

    def run(self, requests: Sequence["EvalRequest"]) -> List["EvalResult"]:
        kw: Dict[str, Any] = {"verbose": self.verbose}
        if self.tf_strategy is not None:
            kw["strategy"] = self.tf_strategy
        return [safe_evaluate(self.evaluate_fn, r, **kw) for r in requests]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- subprocess -------------------------------------------------------------------------
def visible_gpus() -> List[str]:
    """GPU ids for the workers: `CUDA_VISIBLE_DEVICES` when set, else `nvidia-smi -L`."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def _worker_main(conn, evaluate_fn, verbose: int, deterministic_ops: bool,
                 threads: Optional[int]) -> None:
    """A worker process: receives `(task id, request)`, sends `(task id, result)`; None ends."""
    ready = False
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        tid, req = msg
        if not ready:
            try:
                _setup_tf(deterministic_ops, threads)
            except Exception:  # noqa: BLE001 - evaluate will report the real problem
                pass
            ready = True
        result = safe_evaluate(evaluate_fn, req, verbose=verbose)
        try:
            conn.send((tid, result))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx, slot: int, gpu: Optional[str], args: tuple):
        self.slot, self.gpu = slot, gpu
        self.conn, child = ctx.Pipe()
        env = {}
        if gpu is not None:  # a spawned child starts with this process' environment
            # one device per worker; workers sharing a GPU (K > GPUs) must not grab it all
            env = {"CUDA_VISIBLE_DEVICES": gpu,
                   "TF_FORCE_GPU_ALLOW_GROWTH": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH",
                                                               "true")}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self.proc = ctx.Process(target=_worker_main, args=(child, *args), daemon=True,
                                    name=f"eatnas-worker-{slot}")
            self.proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child.close()
        self.current: Optional[int] = None
        self.done = 0

    def stop(self, timeout: float = 30.0) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def _exit_reason(code: Optional[int]) -> str:
    if code is not None and code < 0:
        import signal

        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class SubprocessExecutor:
    """K spawned worker processes; see the module docstring.

    Args:
      workers: K, candidates evaluated at once.
      max_retries: restarts of a candidate whose worker died before it is `failed`.
      max_tasks_per_worker: a worker is replaced after this many candidates (0: never).
      deterministic_ops: workers enable TensorFlow op determinism.
      threads: TensorFlow intra/inter-op threads per worker (None: TensorFlow's default).
      gpus: GPU ids to spread the workers over (None: detect; []: none).
      evaluate_fn: module-level function `fn(req, verbose=...) -> EvalResult` run by the
        workers (default `search.evaluate.evaluate`; tests inject faults here).
    """

    def __init__(self, workers: int = 2, *, max_retries: int = 2, max_tasks_per_worker: int = 20,
                 deterministic_ops: bool = False, threads: Optional[int] = None,
                 gpus: Optional[Sequence[str]] = None, verbose: int = 0,
                 evaluate_fn: Optional[Callable] = None):
        import multiprocessing

        if workers < 1:
            raise ValueError(f"parallel: received {workers}; allowed values: >= 1")
        if max_retries < 0:
            raise ValueError(f"max_worker_retries: received {max_retries}; allowed values: >= 0")
        self.parallel = workers
        self.max_retries = max_retries
        self.max_tasks = max_tasks_per_worker
        self.gpus = list(visible_gpus() if gpus is None else gpus)
        self._ctx = multiprocessing.get_context("spawn")
        self._args = (evaluate_fn, verbose, deterministic_ops, threads)
        self._workers: List[Optional[_Worker]] = [None] * workers
        self.started = 0  # worker processes started so far (recycling / restarts included)
        self.deaths = 0

    def _start(self, slot: int) -> _Worker:
        gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
        self.started += 1
        w = _Worker(self._ctx, slot, gpu, self._args)
        self._workers[slot] = w
        return w

    def worker_pids(self) -> List[int]:
        return [w.proc.pid for w in self._workers if w is not None and w.proc.pid]

    def run(self, requests: Sequence["EvalRequest"]) -> List["EvalResult"]:
        requests = list(requests)
        results: List[Optional["EvalResult"]] = [None] * len(requests)
        attempts = [0] * len(requests)
        deaths: Dict[int, List[str]] = collections.defaultdict(list)
        pending = collections.deque(range(len(requests)))
        while pending or any(w is not None and w.current is not None for w in self._workers):
            for slot in range(self.parallel):
                if not pending:
                    break
                w = self._workers[slot]
                if w is not None and w.current is not None:
                    continue
                if w is not None and (not w.proc.is_alive()
                                      or (self.max_tasks and w.done >= self.max_tasks)):
                    w.stop()
                    w = None
                if w is None:
                    w = self._start(slot)
                tid = pending.popleft()
                attempts[tid] += 1
                try:
                    w.conn.send((tid, requests[tid]))
                    w.current = tid
                except (BrokenPipeError, OSError):  # died between tasks: start over
                    attempts[tid] -= 1
                    pending.appendleft(tid)
                    w.kill()
                    self._workers[slot] = None
            busy = [w for w in self._workers if w is not None and w.current is not None]
            if not busy:
                continue
            mp_connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for w in busy:
                tid = w.current
                got = False
                try:
                    if w.conn.poll():
                        rtid, res = w.conn.recv()
                        results[rtid] = res
                        w.current, w.done, got = None, w.done + 1, True
                except (EOFError, OSError):  # pipe closed: the process is exiting
                    w.proc.join(10)
                if got or w.proc.is_alive():
                    continue
                # The worker died with a candidate in flight.
                w.proc.join(5)
                reason = _exit_reason(w.proc.exitcode)
                self.deaths += 1
                w.kill()
                self._workers[w.slot] = None
                deaths[tid].append(reason)
                if attempts[tid] > self.max_retries:
                    results[tid] = failed_result(
                        requests[tid], f"worker died ({reason}) on all {attempts[tid]} "
                                       f"attempts (--max_worker_retries={self.max_retries})")
                else:
                    pending.appendleft(tid)
        for tid, res in enumerate(results):
            if res is not None and deaths.get(tid) and res.record.ok:
                res.record = res.record.replace(worker_retries=len(deaths[tid]))
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for slot, w in enumerate(self._workers):
            if w is not None:
                w.stop(timeout=10)
                self._workers[slot] = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            for w in self._workers:
                if w is not None and w.proc.is_alive():
                    w.proc.kill()
        except Exception:  # noqa: BLE001
            pass


# -- ray --------------------------------------------------------------------------------
def _ray_task(req, parent_weights, evaluate_fn, verbose: int, deterministic_ops: bool,
              threads: Optional[int], ship_weights: bool):
    """Runs on a Ray worker: parent weights arrive as arrays (object store), trained weights
    go back as arrays; the driver writes them to the run directory."""
    import dataclasses

    from eatnas_tf.model import weights_io

    _setup_tf(deterministic_ops, threads)
    tmp = None
    try:
        if ship_weights:
            changes: Dict[str, Any] = {"save_weights": None}
            if parent_weights is not None:
                tmp = tempfile.mkdtemp(prefix="eatnas_parent_")
                changes["parent_weights"] = weights_io.save(os.path.join(tmp, "parent.npz"),
                                                            parent_weights)
            req = dataclasses.replace(req, **changes)
            kw = {"verbose": verbose}
            if evaluate_fn is None:
                kw["keep_weights"] = True
            return safe_evaluate(evaluate_fn, req, **kw)
        return safe_evaluate(evaluate_fn, req, verbose=verbose)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


class RayExecutor:
    """Ray tasks, one per candidate; see the module docstring.

    Args:
      address: cluster address (`--ray_address`; None: a local cluster started here).
      num_cpus, num_gpus: resources per candidate (num_gpus None: 1 when the cluster has GPUs).
      max_retries: Ray retries of a task whose worker died, then the candidate is `failed`.
      max_calls: a Ray worker process is replaced after this many candidates.
      ship_weights: pass parent / trained weights through the object store (False: workers
        read and write the run directory's weight files directly: shared disk).
      init_kwargs: extra `ray.init` arguments (tests: num_cpus, loopback address).
    """

    def __init__(self, address: Optional[str] = None, *, parallel: int = 2, num_cpus: float = 1,
                 num_gpus: Optional[float] = None, max_retries: int = 2, max_calls: int = 20,
                 deterministic_ops: bool = False, threads: Optional[int] = None,
                 verbose: int = 0, ship_weights: bool = True,
                 evaluate_fn: Optional[Callable] = None,
                 init_kwargs: Optional[Dict[str, Any]] = None):
        try:
            import ray
        except ImportError:
            raise ValueError("executor: ray is not installed; allowed values: local, "
                             "subprocess (or pip install ray)") from None
        self._ray = ray
        self.parallel = parallel
        self.started_ray = False
        if not ray.is_initialized():
            kw = {"include_dashboard": False, "log_to_driver": verbose > 0,
                  "ignore_reinit_error": True}
            if address:
                kw["address"] = address
            # Workers import this package from the same checkout (a shared or identical path).
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            kw["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            kw.update(init_kwargs or {})
            ray.init(**kw)
            self.started_ray = True
        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.ship_weights = ship_weights
        self._args = (evaluate_fn, verbose, deterministic_ops, threads, ship_weights)
        self._task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                                max_calls=max_calls)(_ray_task)
        self.max_retries = max_retries

    def run(self, requests: Sequence["EvalRequest"]) -> List["EvalResult"]:
        ray = self._ray
        from eatnas_tf.model import weights_io

        refs = []
        for req in requests:
            parent = None
            if self.ship_weights and req.parent_weights:
                try:
                    parent = ray.put(weights_io.load(req.parent_weights))
                except (OSError, ValueError) as e:
                    refs.append(failed_result(req, one_line(e)))
                    continue
            refs.append(self._task.remote(req, parent, *self._args))
        out = []
        for req, ref in zip(requests, refs):
            if not isinstance(ref, ray.ObjectRef):
                out.append(ref)
                continue
            try:
                res = ray.get(ref)
            except ray.exceptions.RayError as e:
                res = failed_result(req, f"ray task failed after {self.max_retries} retries "
                                         f"({one_line(e)})")
            if self.ship_weights and res.weights is not None:
                if req.save_weights and res.record.ok:
                    weights_io.save(req.save_weights, res.weights)
                res.weights = None
            out.append(res)
        return out

    def close(self) -> None:
        if self.started_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self.started_ray = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_executor(name: str = "local", *, parallel: int = 1, verbose: int = 0,
                  deterministic_ops: bool = False, max_retries: int = 2,
                  max_tasks_per_worker: int = 20, ray_address: Optional[str] = None,
                  evaluate_fn: Optional[Callable] = None, **kwargs):
    """The executor `--executor=name` asks for (bad values: `ValueError`, one line)."""
    if name == "local":
        return LocalExecutor(verbose=verbose, evaluate_fn=evaluate_fn)
    if name == "subprocess":
        return SubprocessExecutor(parallel, max_retries=max_retries,
                                  max_tasks_per_worker=max_tasks_per_worker,
                                  deterministic_ops=deterministic_ops, verbose=verbose,
                                  evaluate_fn=evaluate_fn, **kwargs)
    if name == "ray":
        return RayExecutor(ray_address, parallel=parallel, max_retries=max_retries,
                           max_calls=max_tasks_per_worker, deterministic_ops=deterministic_ops,
                           verbose=verbose, evaluate_fn=evaluate_fn, **kwargs)
    raise ValueError(f"executor: received {name!r}; allowed values: {', '.join(EXECUTORS)}")


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """Polls `pred` until it is true or `timeout` seconds pass (tests, benchmarks)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
