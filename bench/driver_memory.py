"""Driver memory of the RDS scoring stage as the corpus grows (BENCHMARKS.md, "Driver memory under load").

    .venv/bin/python bench/driver_memory.py --sizes 10x800 95x800 --json /tmp/driver_memory.json

For each ROLESxROWS size a fresh Python process (so that peak figures are its own) builds, in a
temporary directory, a tiny random Llama checkpoint and a synthetic table corpus of ROLES roles with
ROWS rows each (every row in the ``train`` split; questions of ~60 and answers of ~150 characters,
one byte-level token each), then runs the real scoring stage, ``score_roles``: streamed staging, a local Ray cluster, the Ray Data actor pool,
per-role parquet written as batches arrive, the exactly-once check. It reads back every role's
parquet file (each row index 0..ROWS-1 exactly once) and reports:

- ``driver_stage_peak_mib``: the driver's peak resident set during ``score_roles``,
  ``getrusage(RUSAGE_SELF).ru_maxrss`` after the peak was reset (``/proc/self/clear_refs``) at its start;
- ``driver_peak_mib``: the driver's peak over its whole life (``ru_maxrss`` without the reset);
- ``driver_before_mib``, ``driver_at`` (at 25/50/75/100 % of the rows written) and
  ``driver_sampled_peak_mib`` (every 0.5 s): the driver's resident set split as ``/proc/self/status``
  does: ``RssAnon`` (its own heap), ``RssFile``, ``RssShmem`` (pages of Ray's shared-memory object
  store it has read results from: they count in its resident set but belong to the object store);
- ``children_peak_mib``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after ``ray.shutdown()``: the
  largest single descendant the driver waited for (Ray's GCS, raylet and their waited-for children);
- ``ray_process_peak_mib``: the largest resident set of any single process below the driver
  (scoring actors included), sampled every 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WORDS = ("safety role play answer question villain story model prompt scene line voice character "
         "plot turn reply tone stage light dark calm loud").split()


def sentence(seed: int, words: int) -> str:
    """Deterministic filler text of ``words`` words."""
    return " ".join(WORDS[(seed * 7 + i * 13) % len(WORDS)] for i in range(words))


def write_experiment(root: Path, roles: int, rows: int) -> Path:
    """A tiny model, a corpus of ``roles`` x ``rows`` rows, role prompts and a config; returns the config path."""
    from sarft_ray.models import save_tiny_model

    model = save_tiny_model(root / "model")
    names = [f"Bench Role {i:03d}" for i in range(roles)]
    with (root / "corpus.jsonl").open("w") as handle:
        for i in range(rows):  # interleaved, as a real multi-role file would be
            for r, name in enumerate(names):
                row = {"role": name, "sample_id": f"r{r}-{i}", "input": f"Question {i}: {sentence(i, 8)}?",
                       "output": f"{sentence(i + r, 24)}."}
                handle.write(json.dumps(row) + "\n")
    prompts = {name: f"You are {name}, a character in a play. {sentence(r, 20)}." for r, name in enumerate(names)}
    (root / "prompts.json").write_text(json.dumps(prompts))
    config = {
        "experiment": "bench",
        "output_root": str(root / "runs"),
        "model": {"ref": str(model)},
        "roles": {
            "names": names,
            "corpus": {"format": "table", "paths": [str(root / "corpus.jsonl")], "test_fraction": 0.0},
            "prompts": {"format": "mapping", "path": str(root / "prompts.json")},
        },
        "scoring": {"batch_size": 16, "rows_per_call": 64, "num_actors": 2, "actor_num_cpus": 0.5, "torch_threads": 1,
                    "max_source_tokens": 256, "max_target_tokens": 256},
        "ray": {"num_cpus": 2, "include_dashboard": False},
    }
    path = root / "experiment.json"
    path.write_text(json.dumps(config))
    return path


def status_mib() -> dict[str, float]:
    """This process's resident set split as /proc/self/status does: private (anon), file-backed, shared memory."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) / 1024
    return out


class Sampler(threading.Thread):
    """Every 0.5 s: the largest resident set of any process below this one, and this one's private and shared peaks."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.own = {"RssAnon": 0.0, "RssShmem": 0.0}
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.wait(0.5):
            for key, value in status_mib().items():
                if key in self.own:
                    self.own[key] = max(self.own[key], value)
            for child in me.children(recursive=True):
                try:
                    self.peak = max(self.peak, child.memory_info().rss)
                except psutil.Error:
                    continue


def reset_peak() -> None:
    """Reset this process's peak resident set (Linux ``clear_refs`` 5), so ru_maxrss then covers the stage only."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def measure(roles: int, rows: int) -> dict:
    """Run the scoring stage on a fresh ROLES x ROWS corpus in this process; the figures as a dict."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import ray

    from sarft_ray.config import load_config
    from sarft_ray.scoring import score_roles
    from sarft_ray.scoring.store import ScoresWriter

    with tempfile.TemporaryDirectory(prefix="driver-memory-") as tmp:
        cfg = load_config(write_experiment(Path(tmp), roles, rows))
        total = roles * rows
        marks: dict[str, dict[str, float]] = {}
        write = ScoresWriter.write

        def counting_write(self, role, table, _seen=[0]):  # noqa: B006 - a counter shared by the calls
            write(self, role, table)
            _seen[0] += table.num_rows
            for share in (25, 50, 75, 100):
                if f"{share}%" not in marks and _seen[0] >= total * share / 100:
                    marks[f"{share}%"] = {k: round(v, 1) for k, v in status_mib().items()}

        ScoresWriter.write = counting_write  # observes the driver's memory as results arrive; writes unchanged
        sampler = Sampler()
        sampler.start()
        process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports, tiny model, corpus
        before = status_mib()
        reset_peak()
        started = time.perf_counter()
        result = score_roles(cfg, progress=False)
        seconds = time.perf_counter() - started
        stage_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ray.shutdown()
        sampler.stop.set()
        sampler.join()
        for role, directory in result.role_dirs.items():
            table = pq.read_table(directory, partitioning=None, columns=["row_index", "role"])
            index = table["row_index"]
            assert table.num_rows == rows and pc.count_distinct(index).as_py() == rows, role
            assert pc.min(index).as_py() == 0 and pc.max(index).as_py() == rows - 1, role
        return {
            "roles": roles,
            "rows_per_role": rows,
            "rows": total,
            "seconds": round(seconds, 1),
            "rows_per_s": round(total / seconds, 1),
            "driver_before_mib": {k: round(v, 1) for k, v in before.items()},
            "driver_stage_peak_mib": round(stage_peak, 1),
            "driver_peak_mib": round(max(process_peak, stage_peak), 1),
            "children_peak_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "driver_sampled_peak_mib": {k: round(v, 1) for k, v in sampler.own.items()},
            "ray_process_peak_mib": round(sampler.peak / 2**20, 1),
            "driver_at": marks,
            "every_row_once": True,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10x800", "95x800"], help="ROLESxROWS, one process each")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one size in this process
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.one:
        roles, rows = (int(x) for x in args.one.split("x"))
        print(json.dumps(measure(roles, rows)), flush=True)
        return
    results = []
    for size in args.sizes:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local cluster of known size
        out = subprocess.run([sys.executable, __file__, "--one", size], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{size}: exit {out.returncode}\n{out.stderr[-4000:]}")
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(figures)
        print(json.dumps(figures), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
