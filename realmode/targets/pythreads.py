"""Python threads under real mode: ``threading`` and ``concurrent.futures``.

Three kinds of thread work, each of which makes the same system calls in a
thread whatever order the threads run in:

* ``threading.Thread`` workers, each writing, reading back and removing files
  of its own in one temporary directory;
* a producer and a consumer joined by a ``queue.Queue``: the consumer alone
  writes what it takes to a file;
* a ``concurrent.futures.ThreadPoolExecutor`` hashing data in memory (which
  worker takes which item is up to the interleaving; the items make no calls;
  all its workers are started before the first item, see below).

It prints one line per result in a fixed order, so its output is the same
natively and under ``dmvx run``.
"""

import concurrent.futures
import hashlib
import os
import queue
import sys
import tempfile
import threading


def file_worker(directory: str, index: int, results: dict, lock: threading.Lock) -> None:
    digest = hashlib.sha256()
    for round_ in range(5):
        path = os.path.join(directory, f"worker-{index}-{round_}")
        with open(path, "w") as handle:
            handle.write(f"worker {index} round {round_}\n" * (index + 1))
        with open(path, "rb") as handle:
            digest.update(handle.read())
        os.unlink(path)
    with lock:
        results[f"worker {index}"] = digest.hexdigest()[:16]


def consumer(items: queue.Queue, path: str) -> None:
    with open(path, "w") as handle:
        while (item := items.get()) is not None:
            handle.write(f"{item}\n")


def pool_item(index: int) -> str:
    return hashlib.sha256(str(index).encode() * 10_000).hexdigest()[:16]


def main() -> int:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    results: dict[str, str] = {}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as directory:
        threads = [
            threading.Thread(target=file_worker, args=(directory, i, results, lock), name=f"worker-{i}")
            for i in range(workers)
        ]
        for thread in threads:
            thread.start()
        items: queue.Queue = queue.Queue(maxsize=4)
        target = os.path.join(directory, "consumed")
        taker = threading.Thread(target=consumer, args=(items, target))
        taker.start()
        for item in range(20):
            items.put(item * item)
        items.put(None)
        taker.join()
        for thread in threads:
            thread.join()
        with open(target) as handle:
            results["consumer"] = hashlib.sha256(handle.read().encode()).hexdigest()[:16]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        # The pool starts a thread per submission until one is idle: how many
        # it starts would depend on how fast the first items finish. Every
        # worker waits at one barrier first, so it starts them all.
        ready = threading.Barrier(workers + 1)
        started = [pool.submit(ready.wait) for _ in range(workers)]
        ready.wait()
        concurrent.futures.wait(started)
        for index, digest in enumerate(pool.map(pool_item, range(12))):
            results[f"pool {index:02d}"] = digest
    for name in sorted(results):
        print(name, results[name])
    print(threading.active_count(), "thread(s) left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
