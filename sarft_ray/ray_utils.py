"""Connecting to Ray (the cluster in RAY_ADDRESS / ``ray.address``, or a fresh local one), and waiting on it safely.

- ``init_ray`` records whether this process started a local cluster or joined
  one (``SARFT_RAY_CLUSTER``, passed on to every worker), so resource checks
  know whether the cluster can grow (``capacity.py``).
- ``bounded_batches`` iterates a Ray Data dataset with a stall bound: when no
  batch arrives for ``SARFT_RAY_STALL_TIMEOUT_S`` seconds (default 1800) the
  driver fails with a line that says what to change, instead of waiting forever.
- ``ray_failure`` turns Ray's wrapped failures (``RayTaskError``,
  ``ActorDiedError``) into a one-line ``SarftError`` naming the root cause.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import warnings
from collections.abc import Iterable, Iterator

from sarft_ray.config import RayConfig
from sarft_ray.errors import SarftError
from sarft_ray.ray_startup import start_retrying

log = logging.getLogger(__name__)

CLUSTER_ENV = "SARFT_RAY_CLUSTER"  # "local": started by init_ray here; "joined": an existing cluster
STALL_ENV = "SARFT_RAY_STALL_TIMEOUT_S"
DEFAULT_STALL_S = 1800.0
# Ray Data restarts a dead actor, and retries its calls, without end by default; an actor that cannot
# start or dies (a model that does not load, OOM) then fails the run once instead.
ACTOR_RESTARTS = {"max_restarts": 0}

# Quiet noisy-but-harmless Ray loggers on small machines (see the project notes).
_QUIET_LOGGERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)
_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


def _quiet_workers() -> None:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class _WarningsOnly(logging.Filter):
    """Ray Data's console: warnings and errors, less the one that says its progress bars are off."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and not record.getMessage().startswith("Progress bars disabled")


def quiet_ray_data() -> None:
    """Unless ``--verbose``: no Ray Data status blocks, execution plans or INFO lines on the console.

    Without a terminal Ray Data logs a multi-line status block every 10 s
    (``logging_progress.py``); sarft-ray draws its own one-line bars instead.
    Ray Data's log file in the session directory keeps everything.
    """
    from sarft_ray import progress

    if progress.verbose():
        return
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # a handler the root logger also holds (a host program's, pytest's) sees every library's records: leave it be
    shared = set(logging.getLogger().handlers)
    for handler in logging.getLogger("ray.data").handlers:
        if handler in shared or type(handler).__name__ == "SessionFileHandler":
            continue
        if not any(isinstance(f, _WarningsOnly) for f in handler.filters):
            handler.addFilter(_WarningsOnly())


def init_ray(cfg: RayConfig | None = None, env_vars: dict[str, str] | None = None):
    """Start or join Ray once per process and return the ``ray`` module.

    With an address (config or RAY_ADDRESS, as ``ray job submit`` sets it) the
    driver joins that cluster; otherwise it starts a local one sized by
    ``ray.num_cpus``. ``env_vars`` reach every worker process. Ray's own
    console output (worker log lines, Ray Data's status blocks) is off unless
    ``--verbose`` (``progress.verbose``).
    """
    import ray

    from sarft_ray import progress

    cfg = cfg or RayConfig()
    quiet_ray_data()
    if ray.is_initialized():
        return ray
    if not progress.verbose():  # "Token authentication is enabled ..." on every start: news only with --verbose
        logging.getLogger(_TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    os.environ[CLUSTER_ENV] = "joined" if address else "local"
    runtime_env = {"env_vars": {**(env_vars or {}), CLUSTER_ENV: os.environ[CLUSTER_ENV]}}
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=progress.verbose())
    else:
        start_retrying(lambda: ray.init(
            address="local",
            num_cpus=cfg.num_cpus,
            num_gpus=cfg.num_gpus,
            include_dashboard=cfg.include_dashboard,
            dashboard_host="127.0.0.1",
            runtime_env=runtime_env,
            logging_level=logging.WARNING,
            # workers' and Train's log lines reach this terminal only with --verbose (their errors always do)
            log_to_driver=progress.verbose(),
        ), ray.shutdown)
    _quiet_workers()
    return ray


def actor_pool(num_actors: int, min_actors: int | None):
    """Ray Data's actor pool for ``map_batches``: ``num_actors`` fixed, or from ``min_actors`` up to ``num_actors``
    as blocks queue (an autoscaling cluster then adds nodes for the pool only while there is work)."""
    import ray

    if min_actors is None:
        return ray.data.ActorPoolStrategy(size=num_actors)
    return ray.data.ActorPoolStrategy(min_size=min_actors, max_size=num_actors)


@contextlib.contextmanager
def remote_args_allowed():
    """Around ``map_batches(..., **ACTOR_RESTARTS)``: Ray 2.60 warns that ``**ray_remote_args`` is deprecated
    but has no named parameter for actor restarts yet, so the warning would only be noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        yield


def joined_cluster() -> bool:
    """Whether this process works on a cluster it joined (which may grow), not a local one started for it.

    ``init_ray`` records which in the driver and its workers; a process where
    something else started Ray counts as joined only when RAY_ADDRESS is set.
    """
    kind = os.environ.get(CLUSTER_ENV)
    return kind == "joined" if kind else bool(os.environ.get("RAY_ADDRESS"))


def stall_timeout_s() -> float:
    """Seconds without a result after which a Ray Data run counts as stuck (``SARFT_RAY_STALL_TIMEOUT_S``)."""
    raw = os.environ.get(STALL_ENV)
    if not raw:
        return DEFAULT_STALL_S
    try:
        value = float(raw)
    except ValueError:
        raise SarftError(f"{STALL_ENV}: expected a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise SarftError(f"{STALL_ENV}: must be > 0, got {raw!r}")
    return value


_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def bounded_batches(batches: Iterable, stalled: str, timeout_s: float | None = None) -> Iterator:
    """Yield what ``batches`` yields, failing with ``stalled`` (plus the wait) when nothing comes for ``timeout_s``.

    The iteration runs in a daemon thread because a Ray Data iterator cannot be
    interrupted: a driver that gives up exits and takes the thread with it.
    """
    timeout_s = stall_timeout_s() if timeout_s is None else timeout_s
    items: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failed(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=pump, name="sarft-ray-batches", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = items.get(timeout=timeout_s)
            except queue.Empty:
                raise SarftError(
                    f"{stalled} (no result from Ray for {timeout_s:g} s; set {STALL_ENV} to wait longer)"
                ) from None
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


# An exception line of a traceback: ``ValueError: text`` or ``json.decoder.JSONDecodeError: text``.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): (\S.*)$", re.MULTILINE)


def _root(exc: BaseException) -> tuple[str, bool]:
    """(first line of the root cause, whether it is a SarftError); see ``root_cause``."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    found: list[tuple[str, str]] = []
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, SarftError):
            return str(item).strip().splitlines()[0], True
        found += _EXCEPTION_LINE.findall(str(item))
        stack += [getattr(item, "cause", None), item.__cause__, item.__context__]
    for name, text in found:
        if name.split(".")[-1] == "SarftError":
            return text.strip(), True
    for name, text in found:
        if not name.startswith("ray."):
            return f"{name.split('.')[-1]}: {text.strip()}", False
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__), False


def root_cause(exc: BaseException) -> str:
    """The first line of what really went wrong behind a Ray failure.

    A ``SarftError`` raised inside an actor or worker wins (its text already
    names the input). Otherwise the first exception line of the remote
    traceback that is not Ray's own wrapper (Ray keeps only the traceback text
    of most remote errors, not the exception object); failing that, the first
    line of the error itself.
    """
    return _root(exc)[0]


def is_ray_error(exc: BaseException) -> bool:
    """Whether ``exc`` is Ray's report of remote work that failed (a task, an actor, a Ray Data UDF)."""
    from ray.exceptions import RayError

    return isinstance(exc, RayError) or type(exc).__module__.startswith("ray.")


def user_error(exc: BaseException) -> SarftError | None:
    """The ``SarftError`` raised inside Ray behind ``exc``, if that is what it was (Ray wraps it)."""
    cause, is_user_error = _root(exc)
    return SarftError(cause) if is_user_error else None


def ray_failure(exc: BaseException, what: str) -> SarftError:
    """``exc`` as one line: ``what`` (e.g. the model being loaded) and the root cause.

    A ``SarftError`` from inside Ray is passed on as it is: it names its input.
    """
    cause, is_user_error = _root(exc)
    return SarftError(cause if is_user_error else f"{what}: {cause}")
