"""A generic batching thread: requests that arrive together are handled as one batch."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

MAX_BATCH_REQUESTS = 64


class Batcher:
    """One scoring thread. Requests that arrive while it works are scored together in its next batch.

    A batch pays the fixed costs (validation and feature SQL in DuckDB, the models' and pandas'
    per-call overhead) once, so throughput rises with load while a lone request waits for nothing.
    ``work`` takes a list of items and returns one result (or exception) per item; when it fails
    as a whole, the items are retried one by one so that one bad request cannot fail the others.
    """

    def __init__(self, work, max_items: int = MAX_BATCH_REQUESTS):
        self.work = work
        self.max_items = max_items
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="propensity-scorer", daemon=True)
        self.thread.start()

    def submit(self, item) -> Future:
        future: Future = Future()
        self.queue.put((item, future))
        return future

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self.queue.put(None)
        self.thread.join()

    def _loop(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_items:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            items = [item for item, _ in batch]
            try:
                results = self.work(items)
            except Exception:  # noqa: BLE001 - isolate the failing request below
                results = []
                for item in items:
                    try:
                        results.append(self.work([item])[0])
                    except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                        results.append(exc)
            for (_, future), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
