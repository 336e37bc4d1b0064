"""What the terminal shows while work runs: one progress line per stage on stderr, training steps as they happen.

- ``bar``: scoring, training, generation and judging each get one tqdm line on
  stderr. Bars show when stderr is a terminal or with ``--verbose``
  (``configure``, called by the CLI); in a job's log or a pipe they stay away.
- ``verbose``: whether Ray's own console output (Ray Data's status blocks,
  worker log lines) reaches the terminal (``ray_utils.init_ray`` asks).
- ``StepRelay``: each training step from Ray Train's controller (another
  process) to the driver, for a progress bar and for MLflow on the driver;
  ``follow_training`` runs a bar for one training run on it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import sys
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

log = logging.getLogger(__name__)

_state = {"verbose": False}
_POLL_S = 0.5  # how often the driver looks for relayed steps


def configure(verbose: bool) -> None:
    """Set once per process by the CLI: ``--verbose`` (or ``--debug``) shows Ray's output and bars in logs.

    Without it MLflow's own INFO lines ("Creating initial MLflow database tables...") stay away too:
    MLflow gives its logger a handler of its own, so the CLI's log level does not reach it.
    """
    import os

    _state["verbose"] = bool(verbose)
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
        if "mlflow" in sys.modules and os.environ["MLFLOW_LOGGING_LEVEL"].upper() == "WARNING":
            logging.getLogger("mlflow").setLevel(logging.WARNING)


def verbose() -> bool:
    return _state["verbose"]


def bars_enabled() -> bool:
    """Bars on a terminal, or anywhere with ``--verbose``."""
    try:
        return _state["verbose"] or sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return _state["verbose"]


def bar(total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True):
    """One tqdm line on stderr (a no-op bar when bars are off or ``enabled`` is False)."""
    from tqdm import tqdm

    show = enabled and bars_enabled()
    tty = show and sys.stderr.isatty()
    # in a log file each refresh is a new line: refresh rarely there
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not show, dynamic_ncols=tty, mininterval=0.5 if tty else 30)


# ---------------------------------------------------------------------------- training steps


class StepRelay:
    """Training steps, as ``(job, metrics)``, from wherever ``on_step`` runs to this (the driver) process.

    ``sender(job)`` is the ``on_step`` callable of one training run. Called in
    this process (training without Ray) it hands each step over directly.
    Pickled into Ray Train's controller it puts each step on a Ray queue (an
    actor that holds no CPU), created when first needed, so the relay costs
    nothing until Ray trains. ``drain`` (or ``wait``) collects the steps on
    the driver; credentials and MLflow clients never leave it.
    """

    def __init__(self):
        self._local: collections.deque = collections.deque()
        self._queue = None
        self._lock = threading.Lock()

    def sender(self, job: Hashable) -> StepSender:
        return StepSender(job, relay=self)

    def ray_queue(self):
        with self._lock:
            if self._queue is None:
                from ray.util.queue import Queue

                self._queue = Queue(actor_options={"num_cpus": 0})
            return self._queue

    def drain(self) -> list[tuple[Any, dict]]:
        """Every step that arrived since the last call, in arrival order per sender."""
        items = []
        while self._local:
            items.append(self._local.popleft())
        if self._queue is not None:
            try:
                waiting = self._queue.qsize()
                if waiting:
                    items += self._queue.get_nowait_batch(waiting)
            except Exception as exc:  # noqa: BLE001 - a lost relay costs live steps, never the run
                log.debug("could not read relayed training steps: %s", exc)
        return items

    def wait(self, results: queue.Queue, on_step: Callable[[Any, dict], None]):
        """The next item of ``results``; meanwhile every relayed step goes to ``on_step(job, metrics)``."""
        while True:
            for job, metrics in self.drain():
                on_step(job, metrics)
            try:
                return results.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def close(self) -> None:
        with self._lock:
            if self._queue is not None:
                with contextlib.suppress(Exception):
                    self._queue.shutdown()
                self._queue = None


class StepSender:
    """``on_step`` for one training run: ``sender(metrics)`` relays one step (see ``StepRelay``)."""

    def __init__(self, job: Hashable, relay: StepRelay | None = None, ray_queue=None):
        self.job = job
        self._relay = relay
        self._queue = ray_queue

    def __call__(self, metrics: dict) -> None:
        item = (self.job, dict(metrics))
        if self._queue is None and self._relay is not None:
            self._relay._local.append(item)
            return
        try:
            self._queue.put(item)
        except Exception as exc:  # noqa: BLE001 - the driver may be gone; training goes on
            log.debug("could not relay training step: %s", exc)

    def __reduce__(self):
        # pickled for Ray Train's controller: carry the queue's actor handle, not the relay
        queue_handle = self._queue if self._queue is not None else self._relay.ray_queue()
        return (StepSender, (self.job, None, queue_handle))


class TrainingBars:
    """One bar per training run, created at its first relayed step (``total_steps`` sets its length)."""

    def __init__(self, label: Callable[[Any], str] = str):
        self._label = label
        self._bars: dict[Any, Any] = {}
        self.steps: dict[Any, int] = {}  # job -> latest step seen (a disabled bar counts nothing)

    def update(self, job: Any, metrics: dict) -> None:
        current = self._bars.get(job)
        if current is None:
            current = self._bars[job] = bar(metrics.get("total_steps"), f"training {self._label(job)}", "step")
        done = self.steps.get(job, 0)
        step = int(metrics.get("step", done + 1))
        if step > done:  # a resumed run starts at its checkpoint's step
            self.steps[job] = step
            current.update(step - done)
            if "loss" in metrics:
                current.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
            if current.total and step >= current.total:  # done: its line stays, the others move on
                current.close()

    def close(self) -> None:
        for each in self._bars.values():
            each.close()
        self._bars.clear()


@contextlib.contextmanager
def follow_training(label: str) -> Iterator[StepSender | None]:
    """An ``on_step`` for one training run whose steps drive a progress bar (None when bars are off)."""
    if not bars_enabled():
        yield None
        return
    relay, bars, stop = StepRelay(), TrainingBars(lambda job: job), threading.Event()

    def pump() -> None:
        while not stop.wait(_POLL_S):
            for job, metrics in relay.drain():
                bars.update(job, metrics)

    thread = threading.Thread(target=pump, name="sarft-training-bar", daemon=True)
    thread.start()
    try:
        yield relay.sender(label)
    finally:
        stop.set()
        thread.join()
        for job, metrics in relay.drain():
            bars.update(job, metrics)
        bars.close()
        relay.close()
