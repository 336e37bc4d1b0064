"""The scoring driver's memory does not grow with the corpus when many roles' rows are interleaved.

Staging held up to ``chunk_rows`` rows per role, so a corpus of many roles whose rows alternate (as a
multi-role table does) was held in memory nearly whole before a row was written. ``bench/driver_memory.py``
measures the whole scoring stage; this checks the staging bound on its own, without Ray.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq


def test_staging_many_interleaved_roles_holds_a_bounded_number_of_rows(tmp_path):
    roles = [f"Role {i:03d}" for i in range(100)]
    answer = "word " * 400
    for name, rows in (("small.jsonl", 2), ("big.jsonl", 600)):  # rows per role, roles interleaved
        with (tmp_path / name).open("w") as handle:
            for i in range(rows):
                for role in roles:
                    handle.write(json.dumps({"role": role, "sample_id": str(i), "input": f"q{i}", "output": answer}) + "\n")
    size_mb = (tmp_path / "big.jsonl").stat().st_size / 2**20
    script = textwrap.dedent(
        f"""
        import resource
        from pathlib import Path
        from sarft_ray.data import CorpusConfig
        from sarft_ray.scoring.staging import stage_corpus
        def stage(name):
            cfg = CorpusConfig(format="table", paths=[{{"path": "{tmp_path}/" + name}}], test_fraction=0.0)
            return stage_corpus(cfg, {roles!r}, ["train"], Path("{tmp_path}") / ("staged-" + name), chunk_rows=256)
        stage("small.jsonl")  # pays pyarrow's one-off allocations
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        staged = stage("big.jsonl")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(staged.total, (after - before) / 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    total, grown_mb = int(out[0]), float(out[1])
    assert total == 60_000 and size_mb > 100
    # held per role, 256 rows x 100 roles (over 40% of the corpus) would be in memory at once
    assert grown_mb < size_mb / 8, f"peak memory grew by {grown_mb:.0f} MB while staging {size_mb:.0f} MB"
    files = sorted((tmp_path / "staged-big.jsonl").glob("*.parquet"))
    assert len(files) == 100
    for path in files:  # every role whole and in order, whatever the row groups
        table = pq.read_table(path, columns=["row_index", "sample_id"])
        assert table["row_index"].to_pylist() == list(range(600))
        assert table["sample_id"].to_pylist() == [str(i) for i in range(600)]
