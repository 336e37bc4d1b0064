"""MLflow tracking: one experiment per config, a parent run per ``run``/``sweep``, nested runs per role or trial.

Every write happens on the driver through one ``MlflowClient`` (no global
"active run"), so roles finishing in parallel threads and Tune callbacks can
log without racing over a sqlite database. Logging is idempotent: a resumed
``run`` or ``sweep`` finds its runs again by the ``sarft.key`` tag and only
adds what is missing (params, metric steps, artefacts).

Where the store lives: ``tracking.mlflow_uri`` from the config, else the
``MLFLOW_TRACKING_URI`` environment variable, else a sqlite database at
``<experiment_dir>/mlflow.db`` (an absolute path; artefacts beside it in
``mlartifacts/``). The experiment is tagged as model training
(``mlflow.experimentKind``), so MLflow 3's UI lists it with its runs and
charts, not as a GenAI app with an empty traces page.

Metric names are grouped by prefix: ``train/`` (per-step curves and the
run's summary), ``rds/`` (scoring), ``eval/`` (evaluation figures); the
parent run of ``run`` adds ``base/``, ``arm/<name>/``, ``delta/<name>/``.

Nothing secret reaches the store: params, tag values and text artefacts pass
through :mod:`sarft_ray.secrets` (URL credentials and registered key values
become ``***``; config keys named like secrets are hidden whole).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarft_ray.secrets import REDACTED, is_secret_key, redact_text, redact_tree, redact_url, register_config_secrets

log = logging.getLogger(__name__)

KEY_TAG = "sarft.key"
# MLflow 3's UI opens an experiment by its kind; without one it shows the GenAI (traces) view
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
KIND_TAG = "sarft.kind"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
_MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
# Redacted tracking URI -> the URI with its credentials, in this process's memory only: a TrackerSpec
# holds the redacted one, so the Tune state it is pickled into (under the sweep directory) holds no password.
_FULL_URIS: dict[str, str] = {}


# ---------------------------------------------------------------------------- pure helpers


def flatten_params(tree: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys -> string values; secrets replaced by ``***``; lists as JSON; long values cut."""
    out: dict[str, str] = {}
    if isinstance(tree, Mapping) and tree:
        for key, value in tree.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if is_secret_key(str(key)) and value is not None:
                out[dotted] = REDACTED
            else:
                out.update(flatten_params(value, dotted))
        return out
    if isinstance(tree, str):
        text = redact_text(tree)
    elif isinstance(tree, (list, tuple, Mapping)):
        text = json.dumps(redact_tree(tree), default=str)
    else:
        text = str(tree)
    out[prefix or "value"] = text[:_MAX_PARAM_VALUE]
    return out


def numeric_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries MLflow can store as metrics (numbers, bools); others are skipped."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
            out[key] = float(value)
    return out


def default_uri(experiment_dir: str | Path) -> str:
    """``sqlite:////abs/path/mlflow.db`` (four slashes: sqlite's prefix plus an absolute path)."""
    return "sqlite:///" + str(Path(experiment_dir).resolve() / "mlflow.db")


def ui_hint(uri: str) -> str:
    """How to look at the runs: the ``mlflow ui`` command for a sqlite store, else the server's address.

    MLflow 3's UI starts in its GenAI view; its sidebar switch (or ``?workflowType=machine_learning``
    in the page address) shows training runs.
    """
    hint = " (MLflow 3: pick 'Machine learning' in the sidebar)"
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000" + hint
    return f"MLflow at {redact_url(uri)}" + hint


def resolve_uri(configured: str | None, experiment_dir: str | Path) -> str:
    """Config first, then ``MLFLOW_TRACKING_URI``, then the sqlite default."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(experiment_dir)


# ---------------------------------------------------------------------------- the tracker


@dataclass(frozen=True)
class TrackerSpec:
    """What a ``Tracker`` needs, as plain strings (it pickles into Tune state).

    ``uri`` is shown and stored redacted; the credentials it had stay in this
    process (``Tracker`` looks them up), so a spec is safe to print or pickle.
    """

    uri: str
    experiment: str
    artifact_location: str | None = None
    log_model: str = "adapter"  # tracking.log_model: which trained weights are uploaded

    @classmethod
    def from_config(cls, cfg) -> TrackerSpec:
        register_config_secrets(cfg)
        full = resolve_uri(cfg.tracking.mlflow_uri, cfg.experiment_dir)
        uri = redact_url(full)
        if uri != full:
            _FULL_URIS[uri] = full
        artifacts = None
        if uri.startswith("sqlite:"):  # a server chooses (or proxies) its own artefact store
            artifacts = (Path(cfg.experiment_dir).resolve() / "mlartifacts").as_uri()
        return cls(uri, cfg.tracking.experiment_name or cfg.experiment, artifacts, cfg.tracking.log_model)


class Tracker:
    """Thin, idempotent wrapper around ``MlflowClient`` for one experiment."""

    def __init__(self, spec: TrackerSpec):
        from mlflow.tracking import MlflowClient

        self.spec = spec
        if spec.uri.startswith("sqlite:"):
            Path(spec.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=_FULL_URIS.get(spec.uri, spec.uri))
        self.experiment_id = self._experiment()

    def _experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.spec.experiment)
        if found is None:
            try:
                return self.client.create_experiment(
                    self.spec.experiment,
                    artifact_location=self.spec.artifact_location,
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                )
            except MlflowException:  # created meanwhile by another driver
                found = self.client.get_experiment_by_name(self.spec.experiment)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        if EXPERIMENT_KIND_TAG not in found.tags:  # made by an earlier version, or by hand: a kind chosen in the UI stays
            self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id

    # ------------------------------------------------------------------ runs

    def find_run(self, key: str, parent_id: str | None = None):
        """The latest run tagged ``sarft.key=key`` (under ``parent_id`` when given), or None."""
        query = f"tags.`{KEY_TAG}` = '{_quote(key)}'"
        if parent_id is not None:
            query += f" and tags.`{PARENT_TAG}` = '{_quote(parent_id)}'"
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"], max_results=1
        )
        return runs[0] if runs else None

    def open_run(
        self,
        key: str,
        name: str,
        kind: str,
        parent_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        reuse: bool = True,
    ) -> str:
        """The run for ``key`` (found again when ``reuse``, else created), marked RUNNING and named ``name``; returns its id."""
        run = self.find_run(key, parent_id) if reuse else None
        all_tags = {KEY_TAG: key, KIND_TAG: kind, **{k: redact_text(str(v)) for k, v in (tags or {}).items()}}
        name = redact_text(name)
        if run is None:
            if parent_id is not None:
                all_tags[PARENT_TAG] = parent_id
            run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
            return run.info.run_id
        run_id = run.info.run_id
        if run.info.status != "RUNNING" or run.info.run_name != name:
            self.client.update_run(run_id, status="RUNNING", name=name)
        self.set_tags(run_id, {k: v for k, v in all_tags.items() if run.data.tags.get(k) != v})
        return run_id

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, redact_text(str(v))) for k, v in tags.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=items[start : start + _MAX_PARAMS_PER_BATCH])

    # ------------------------------------------------------------------ params and metrics

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log params not yet on the run (MLflow refuses to change a logged param)."""
        from mlflow.entities import Param

        params = {k: redact_text(str(v)) for k, v in params.items()}
        existing = self.client.get_run(run_id).data.params
        fresh = [Param(k, v) for k, v in params.items() if k not in existing]
        changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
        if changed:
            log.warning("run %s keeps its earlier values of params %s", run_id, changed[:5])
        for start in range(0, len(fresh), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=fresh[start : start + _MAX_PARAMS_PER_BATCH])

    def log_metrics(self, run_id: str, values: Mapping[str, Any], step: int = 0, prefix: str = "") -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(prefix + k, v, now, step) for k, v in numeric_metrics(values).items()]
        for start in range(0, len(metrics), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + _MAX_METRICS_PER_BATCH])

    def log_summary(self, run_id: str, values: Mapping[str, Any], prefix: str = "") -> None:
        """Step-less figures; a key already holding the same value is not logged again."""
        latest = self.client.get_run(run_id).data.metrics
        fresh = {k: v for k, v in numeric_metrics(values).items() if latest.get(prefix + k) != v}
        self.log_metrics(run_id, fresh, prefix=prefix)

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(run_id, key)}

    def log_history(
        self, run_id: str, history: Iterable[Mapping[str, Any]], keys: Iterable[str], prefix: str = "train/"
    ) -> int:
        """Per-step metrics (each row has ``step``); steps already logged are skipped. Returns rows logged."""
        keys = list(keys)
        done = self.logged_steps(run_id, prefix + keys[0]) if keys else set()
        count = 0
        for row in history:
            step = int(row["step"])
            if step in done:
                continue
            self.log_metrics(run_id, {k: row[k] for k in keys if k in row}, step=step, prefix=prefix)
            count += 1
        return count

    # ------------------------------------------------------------------ artefacts

    def artifact_names(self, run_id: str, path: str | None = None) -> set[str]:
        try:
            return {Path(f.path).name for f in self.client.list_artifacts(run_id, path)}
        except Exception:  # an artefact store that cannot list (yet) is treated as empty
            return set()

    def log_artifact(self, run_id: str, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or directory; a file already present under the same name is replaced."""
        local_path = Path(local_path)
        if not local_path.exists():
            log.warning("artefact %s does not exist; not logged", local_path)
            return
        if local_path.is_dir():
            self.client.log_artifacts(run_id, str(local_path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(local_path), artifact_path)

    def log_json(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self.client.log_text(run_id, json.dumps(redact_tree(obj), indent=2, default=str) + "\n", artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, redact_text(text), artifact_file)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
