"""Starting a local Ray cluster on a loaded machine: Ray waits a fixed 30 s for its new node to register
(``ray/_private/node.py``) and then gives up, although the node is usually just slow. ``start_retrying`` starts it
again, after stopping what the failed start left running."""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)

STARTUP_ATTEMPTS = 3


def start_retrying(start, shutdown, attempts: int = STARTUP_ATTEMPTS) -> None:
    """``start()`` a local cluster, again after ``shutdown()`` when Ray gives up waiting for its own raylet."""
    for attempt in range(1, attempts + 1):
        before = _child_pids()
        try:
            start()
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == attempts:
                raise
            log.warning("Ray's local node was slow to start (attempt %d of %d): starting it again", attempt, attempts)
            shutdown()
            _stop(_child_pids() - before)  # the failed start's GCS and raylet: Ray lost track of them with its node


def _child_pids() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def _stop(pids: set[int]) -> None:
    import psutil

    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(pid))
            processes[-1].terminate()
    _, alive = psutil.wait_procs(processes, timeout=5)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
