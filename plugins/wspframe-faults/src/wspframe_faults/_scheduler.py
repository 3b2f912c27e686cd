"""The faults layer's timers: one thread per layer, started on first need."""

from __future__ import annotations

import heapq
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["Scheduler"]

_now = time.monotonic


class Scheduler:
    """Calls functions at given (monotonic) times, on one thread started on demand."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._heap and self._heap[0][0] <= _now():
                        break
                    timeout = self._heap[0][0] - _now() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception as exc:  # reported, never fatal to the scheduler
                sys.unraisablehook(_Unraisable(exc, fn))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)


class _Unraisable:
    """What ``sys.unraisablehook`` is given for a timer that raised."""

    def __init__(self, exc: BaseException, obj: object) -> None:
        self.exc_type: type[BaseException] = type(exc)
        self.exc_value: BaseException | None = exc
        self.exc_traceback: TracebackType | None = exc.__traceback__
        self.err_msg: str | None = "Exception in a faults layer timer"
        self.object: object = obj
