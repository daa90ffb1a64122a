"""The process's model computations, torch's and llama.cpp's, on one thread of its own.

Why: both libraries parallelise with OpenMP (one shared libgomp), which keeps a team of worker
threads for each thread that calls it and, once there are more such threads than cores, stops
letting them spin between parallel regions (each region then waits for threads to wake). The
web server answers on whichever of its threads takes the request, so each of them grew a team,
and on 2 cores that took time to the first token from 460 ms (a server with one thread) to
790 ms (eight), and an embedding of the question from 2 ms to 40. Run from one thread, every
computation reuses one team. So the embedding model's encode, llama.cpp's prompt evaluation
and decoding run here, whoever asks, one at a time. A generation streams its tokens to its
reader through a queue, without waiting for the reader (a handover per token cost 7% of the
decoding rate), and runs any work handed over meanwhile between two tokens: the support
check's embeddings between sentences (strict) wait a token, not the whole answer. The gate
(rag/generation/gate.py) still decides whose generation it is.

Nothing here knows about tenants or models: it runs what it is handed, in order.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_jobs: queue.SimpleQueue = queue.SimpleQueue()
_thread: threading.Thread | None = None
_owner_pid = 0  # the process that started _thread (a forked child starts its own)
_start_lock = threading.Lock()
_END = object()


def run(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`work(*args, **kwargs)` on the compute thread; its result, or its exception, here."""
    if threading.current_thread() is _thread:
        return work(*args, **kwargs)
    future: Future = Future()
    _jobs_queue().put((future, functools.partial(work, *args, **kwargs)))
    return future.result()


def stream(produce: Callable[[Callable[[Any], bool]], None]) -> Iterator[tuple[Any, float]]:
    """What `produce(emit)` emits on the compute thread, each with the time it was emitted.

    `emit(item)` hands the item over, runs the work waiting for the compute thread, and returns
    False once the reader has stopped (closed this iterator): `produce` should return then.
    Closing waits for `produce` to return, so once the reader's loop is over nothing of the
    stream is using the model.
    """
    items: queue.SimpleQueue = queue.SimpleQueue()
    stopped = threading.Event()

    def emit(item: Any) -> bool:
        items.put((item, time.perf_counter()))
        _run_waiting()
        return not stopped.is_set()

    def job() -> None:
        try:
            produce(emit)
        except BaseException as exc:  # raised in the reader
            items.put((exc, None))
        finally:
            items.put((_END, None))

    if threading.current_thread() is _thread:
        raise RuntimeError("a stream cannot be read on the compute thread itself")
    future: Future = Future()
    _jobs_queue().put((future, job))
    ended = False
    try:
        while True:
            item, at = items.get()
            if item is _END:
                ended = True
                return
            if at is None:
                ended = True
                raise item
            yield item, at
    finally:
        if not ended:
            stopped.set()
            while items.get()[0] is not _END:
                pass


def _run_waiting() -> None:
    """On the compute thread, inside a stream: the jobs handed over since, in order."""
    while True:
        try:
            future, work = _jobs.get_nowait()
        except queue.Empty:
            return
        _run_one(future, work)


def _jobs_queue() -> queue.SimpleQueue:
    global _thread, _owner_pid, _jobs
    if _thread is not None and _owner_pid == os.getpid() and _thread.is_alive():
        return _jobs
    with _start_lock:
        if _thread is None or _owner_pid != os.getpid() or not _thread.is_alive():
            _jobs = queue.SimpleQueue()  # a forked child's copy may hold its parent's jobs
            _thread = threading.Thread(
                target=_serve, args=(_jobs,), name="model-compute", daemon=True
            )
            _owner_pid = os.getpid()
            _thread.start()
    return _jobs


def _serve(jobs: queue.SimpleQueue) -> None:
    while True:
        _run_one(*jobs.get())


def _run_one(future: Future, work: Callable[[], Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(work())
    except BaseException as exc:  # raised in the caller by future.result()
        future.set_exception(exc)
