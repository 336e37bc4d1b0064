#!/usr/bin/env bash
# The GPU check of issue 12, in one go (about 3-5 minutes on an H100/H200; the time limits add up to 8): needs python with torch,
# transformers and peft only. Everything goes to $OUT (default /tmp/gpu_check_out):
#   environment.txt        nvidia-smi, versions
#   loss_check.json        chunked loss vs the previous full-logits loss on the device (float64 tiny model, bf16 1B shape)
#   rbo_step.json / .md    bench/rbo_step.py --mode synthetic: Llama-3.2-1B shape, bf16, micro-batch 16 and 64, LoRA and
#                          full; SFT, RBO at 0.3/0.9 harmful, the previous loss, the release-style step; time, tokens/s,
#                          peak memory, MFU
#   rbo_step_gc.json / .md the same for full fine-tuning at batch 64 with gradient checkpointing (memory vs time)
#   rds_throughput.json    bench/rds_throughput.py --mode synthetic (RDS scoring: naive vs batched vs prefix reuse)
#   *.log                  each command's output
# Each command has its own time limit, so one that hangs or runs long leaves the others' results.
# DEVICE=cpu SIZE=tiny bench/gpu_check.sh runs the same commands at a tiny shape on a CPU (a smoke test of this script).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check_out}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
SIZE="${SIZE:-1b}"
DTYPE=bfloat16
[ "$DEVICE" = cpu ] && DTYPE=float32
mkdir -p "$OUT"
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

{
  date -u
  nvidia-smi || true
  "$PY" -c "import platform, torch, transformers, peft; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'peft', peft.__version__, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
} > "$OUT/environment.txt" 2>&1

status=0
run() {  # run NAME SECONDS COMMAND...: output in $OUT/NAME.log, a failure noted and the script goes on
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
  [ $rc -eq 0 ] || status=1
}

SKIP_1B=""
[ "$SIZE" = 1b ] || SKIP_1B=--skip-1b
run loss_check 60 sh -c "\"$PY\" bench/gpu_loss_check.py --device $DEVICE $SKIP_1B > \"$OUT/loss_check.json\""
run rbo_step 270 "$PY" bench/rbo_step.py --mode synthetic --device "$DEVICE" --size "$SIZE" --batches 16,64 \
  --modes lora,full --json "$OUT/rbo_step.json" --markdown "$OUT/rbo_step.md"
run rds_throughput 100 "$PY" bench/rds_throughput.py --mode synthetic --device "$DEVICE" --size "$SIZE" --dtype $DTYPE \
  --samples 512 --batch-size 32 --json "$OUT/rds_throughput.json"
run rbo_step_gc 50 "$PY" bench/rbo_step.py --mode synthetic --device "$DEVICE" --size "$SIZE" --batches 64 --modes full \
  --variants sft,rbo@0.3,unfused@0.3 --gradient-checkpointing --json "$OUT/rbo_step_gc.json" --markdown "$OUT/rbo_step_gc.md"
exit $status
