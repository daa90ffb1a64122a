"""Model computations run on the process's one compute thread, whichever thread asks
(rag/compute_thread.py says why: OpenMP teams per calling thread halved prompt evaluation)."""

import os
import threading

import pytest


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_work_runs_on_the_compute_thread_and_its_errors_come_back():
    from rag import compute_thread

    seen = []
    with_caller = threading.Thread(
        target=lambda: seen.append(compute_thread.run(lambda: threading.current_thread().name))
    )
    with_caller.start()
    with_caller.join()
    assert seen == ["model-compute"]
    assert compute_thread.run(lambda: threading.current_thread().name) == "model-compute"
    with pytest.raises(ZeroDivisionError):
        compute_thread.run(lambda: 1 / 0)
    assert compute_thread.run(lambda: 42) == 42  # the thread survived the error


def test_answers_from_many_threads_grow_no_thread_teams():
    """Six long-lived caller threads (a web server's), each embedding and generating: the
    process gains those six threads and no OpenMP team for any of them."""
    from rag.embedding import embed_texts
    from rag.generation.decode import DecodeStats, decode_stream
    from rag.generation.gate import get_gate

    def work():
        embed_texts(["How many lanterns does the harbour keep?"])
        with get_gate().turn() as model:
            tokens = model.tokenize("Count to three:", special=False)
            list(
                decode_stream(
                    model=model, tokens=tokens, max_tokens=4, temperature=0, stats=DecodeStats()
                )
            )

    work()  # the compute thread and its teams exist from here on
    before = _os_threads()
    done, hold = threading.Barrier(7), threading.Event()

    def caller():
        work()
        done.wait()
        hold.wait()  # stay alive, as a server's threads do

    callers = [threading.Thread(target=caller) for _ in range(6)]
    for t in callers:
        t.start()
    done.wait()
    try:
        assert _os_threads() <= before + len(callers)
    finally:
        hold.set()
        for t in callers:
            t.join()


def test_a_stream_runs_other_work_between_items_and_stops_with_its_reader():
    from rag import compute_thread

    bound = 10**7  # far more items than the reader could ever wait for
    produced, returned = [], threading.Event()

    def produce(emit):
        try:
            for i in range(bound):
                produced.append(i)
                if not emit(i):
                    return
        finally:
            returned.set()

    reader = compute_thread.stream(produce)
    assert [next(reader)[0] for _ in range(3)] == [0, 1, 2]
    # Handed over while the stream runs: done between two of its items, not after the last.
    assert compute_thread.run(lambda: threading.current_thread().name) == "model-compute"
    assert len(produced) < bound
    reader.close()  # returns only once `produce` has seen the stop and returned
    assert returned.is_set() and len(produced) < bound
    assert compute_thread.run(lambda: 7) == 7  # the thread is free again
