"""The benchmarks' synthetic modes (bench/rbo_step.py, bench/rds_throughput.py) run end to end at a tiny shape on CPU, with torch, transformers and peft only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The GPU machine has torch, transformers and peft only: the synthetic mode must not need the package's other
# dependencies. A None entry in sys.modules makes their import fail.
BLOCKED = ["ray", "deepspeed", "mlflow", "pydantic", "pyarrow", "typer"]
RUN = (
    "import runpy, sys\n"
    "for name in {blocked!r}: sys.modules[name] = None\n"
    "sys.argv = {argv!r}\n"
    "runpy.run_path({script!r}, run_name='__main__')\n"
)


def test_synthetic_bench_runs_on_cpu_without_the_package_dependencies(tmp_path):
    script = str(ROOT / "bench" / "rbo_step.py")
    out_json, out_md = tmp_path / "rbo.json", tmp_path / "rbo.md"
    argv = [script, "--mode", "synthetic", "--device", "cpu", "--size", "tiny", "--json", str(out_json), "--markdown", str(out_md)]
    code = RUN.format(blocked=BLOCKED, argv=argv, script=script)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    data = json.loads(out_json.read_text())
    results = data["results"]
    variants = ["sft", "rbo@0.3", "rbo@0.9", "unfused-sft", "unfused@0.3", "unfused@0.9", "release"]
    assert [(r["mode"], r["batch"], r["variant"]) for r in results] == [
        (m, b, v) for m in ("lora", "full") for b in (4, 8) for v in variants
    ]
    for r in results:
        assert "error" not in r and r["step_s"] > 0 and r["tokens"] > 0 and r["model_tflop_per_step"] > 0
        assert r["mfu"] is None  # no peak FLOP/s on a CPU
    by = {(r["mode"], r["batch"], r["variant"]): r for r in results}
    assert by[("lora", 8, "rbo@0.3")]["harmful_rows"] == [2] and by[("lora", 8, "rbo@0.9")]["harmful_rows"] == [7]
    assert by[("lora", 8, "sft")]["harmful_rows"] == [0]
    # the FLOP count credits the reference forward, and LoRA's frozen weights get no weight gradient
    assert by[("full", 4, "rbo@0.9")]["model_tflop_per_step"] > by[("full", 4, "sft")]["model_tflop_per_step"]
    assert by[("lora", 4, "sft")]["model_tflop_per_step"] < by[("full", 4, "sft")]["model_tflop_per_step"]
    assert data["meta"]["size"] == "tiny" and data["meta"]["vocab"] == 4096
    table = out_md.read_text()
    assert "| full | 8 | release |" in table and "previous loss / chunked loss" in table


def test_scoring_bench_synthetic_mode_runs_with_torch_and_transformers_only(tmp_path):
    """bench/rds_throughput.py --mode synthetic: the current scorer and the previous one agree, on a bare machine."""
    script = str(ROOT / "bench" / "rds_throughput.py")
    out_json = tmp_path / "rds.json"
    argv = [script, "--mode", "synthetic", "--size", "tiny", "--vocab", "512", "--samples", "12", "--batch-size", "4",
            "--naive-samples", "3", "--threads", "1", "--json", str(out_json)]
    code = RUN.format(blocked=BLOCKED, argv=argv, script=script)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out_json.read_text())
    assert set(data["phases"]) == {"a_naive_3pass", "b_batched_2pass", "c_batched_2pass_prefix", "c0_previous_2pass_prefix"}
    assert data["max_abs_diff_sum_logp_c0_vs_c"] < 1e-3 and data["max_abs_diff_sum_logp_a_vs_c"] < 1e-3
    assert data["ratios"]["c_over_c0"] > 0
