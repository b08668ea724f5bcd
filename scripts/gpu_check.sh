#!/usr/bin/env bash
# One device call: GPU tests, maskmix bench, PyTorch twin bench (eager + torch.compile), and short real
# training runs of mixer and llama on the shared TinyStories shards. Everything small lands in
# $OUT/results.tar.gz (CSV + .meta + logs); the console gets a summary.
#   Built here: scripts/make_carry.sh (binary, tests, non-CUDA libs, shards, test data -> carry/bundle.tar.xz)
#   On the device: scripts/gpu_check.sh carry/bundle.tar.xz "$OUT" [stages]   stages: quick,tests,bench,profile,kernels,train,fused_ab,ab_before,representation,representation_trained,
#     representation_llama1024,
#     retrieval,compare,heads,context,torch,
#     speed (maskmix bench and the PyTorch twin alternated for 3 rounds: the card's speed drifts between
#     calls, so the ratios come from runs minutes apart; scripts/speed_table.sh summarises them)
set -uo pipefail
bundle=$1
out=$2
stages=${3:-tests,bench,train,torch}  # the study stages run only when named
root=/tmp/maskmix-carry
rm -rf "$root" && mkdir -p "$root" && tar xJf "$bundle" -C "$root"
export LD_LIBRARY_PATH="$root/lib:${LD_LIBRARY_PATH:-}"
bin="$root/bin/maskmix"
res=$(mktemp -d)/results
mkdir -p "$res"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)
tag=$(echo "$card" | tr -c 'A-Za-z0-9\n' '_' | tr 'A-Z' 'a-z' | sed 's/_*$//')
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$res/gpu.txt"
stage() { echo "== $1 ($(date +%T))"; }
has() { [[ ",$stages," == *",$1,"* ]]; }

if has quick; then  # the newest GPU test alone, first: a kernel that hangs or fails stops the call here
  stage "GPU test: fused GELU GEMMs"
  (cd "$res" && MASKMIX_REQUIRE_GPU=1 timeout 90 "$root/bin/maskmix_tests" "GPU feed-forward with GELU fused*,GPU fused fc1*" > test_quick.log 2>&1)
  status=$?; echo "quick test exit $status"; tail -n 30 "$res/test_quick.log"
  [ "$status" = 0 ] || { tar czf "$out/results.tar.gz" -C "$(dirname "$res")" results; exit 1; }
fi
if has tests; then
  stage "GPU tests"
  (cd "$res" && MASKMIX_REQUIRE_GPU=1 MASKMIX_DATA="$root/shared" MASKMIX_BIN="$bin" timeout 240 "$root/bin/maskmix_tests" "[gpu]" > test_gpu.log 2>&1)
  echo "tests exit $?"; tail -n 4 "$res/test_gpu.log"
fi
if has bench; then
  stage "maskmix bench"
  timeout 150 "$bin" bench --device cuda --batch 32 --steps 20 --out "$res/bench_${tag}.csv" 2>&1 | tail -n 6
  timeout 100 "$bin" bench --device cuda --precision tf32 --batch 32 --steps 20 --out "$res/bench_${tag}_tf32.csv" 2>&1 | tail -n 6
  timeout 100 "$bin" bench --device cuda --recompute --batch 32 --steps 20 \
    --out "$res/bench_${tag}_recompute.csv" 2>&1 | tail -n 5
fi
if has profile; then
  stage "maskmix bench --profile (per-op table)"
  timeout 200 "$bin" bench --device cuda --batch 32 --steps 10 --profile 3 --out "$res/bench_profiled_${tag}.csv" \
    --profile-out "$res/profile_${tag}.csv" 2>&1 | grep -v "^bench:"
fi
if has kernels; then  # Nsight Compute: per-kernel time of one training step per config (dev/kernel_profile.sh)
  stage "per-kernel profile (ncu)"
  for config in ${KERNEL_CONFIGS:-mixer:d512:l8:c512 mixer:d1024:l8:c512 llama:d512:l8:h4:c512 llama:d1024:l8:h8:c512}; do
    { echo "## $config (batch 32, vocab 4096)"; echo; timeout 150 dev/kernel_profile.sh "$bin" "$config" 700 800; echo; } >> "$res/kernels.md" 2>&1
  done
  grep -E "^## |kernel launches" "$res/kernels.md"
fi
if has train; then
  for model in mixer:d512:l8:c512 llama:d512:l8:h4:c512; do
    stage "train $model"
    name=${model%%:*}
    timeout 100 "$bin" train --device cuda --model "$model" --data "$root/data/ts" --batch 32 --epochs 4 --warmup 100 --lr 1e-3 \
      --eval-every 50 --log-every 10 --out "/tmp/run_$name" > "$res/train_${name}.log" 2>&1
    cp "/tmp/run_$name/train.csv" "$res/train_gpu_${name}.csv"; cp "/tmp/run_$name/train.meta" "$res/train_gpu_${name}.meta"
    grep val "$res/train_${name}.log" | tail -n 1
  done
fi
for part in untrained trained; do  # claim 1 in two halves (each under 10 minutes on an H200)
  name=representation; [ $part = untrained ] || name=representation_trained
  has $name || continue
  stage "representation (claim 1), $part models"
  PART=$part MASKMIX="$bin" DATA="$root/data/ts" OUT="$res" WORK=/tmp/representation DEVICE=cuda timeout 540 scripts/reproduce_representation.sh \
    >> "$res/representation.log" 2>&1
  echo "representation $part exit $?"; grep -E "^(mixer|llama).*hamming|^== done" "$res/representation.log" | tail -n 40
done
if has representation_llama1024; then
  stage "representation: trained llama d1024 only (rows to merge into representation.csv)"
  mkdir -p "$res/rep_llama1024"
  PART=trained KINDS=llama WIDTHS=1024 MASKMIX="$bin" DATA="$root/data/ts" OUT="$res/rep_llama1024" WORK=/tmp/representation DEVICE=cuda \
    timeout 300 scripts/reproduce_representation.sh > "$res/rep_llama1024/log" 2>&1
  echo "representation_llama1024 exit $?"; tail -n 12 "$res/rep_llama1024/log"
fi
if has retrieval; then
  stage "retrieval (claim 3)"
  MASKMIX="$bin" DATA="$root/data/ts" PAIRS="$root/shared/retrieval" OUT="$res" WORK=/tmp/retrieval DEVICE=cuda timeout 560 \
    scripts/reproduce_retrieval.sh > "$res/retrieval.log" 2>&1
  echo "retrieval exit $?"; grep -E "^== |top-1" "$res/retrieval.log" | tail -n 30
fi
if has compare; then
  stage "equal-budget comparison (claim 2)"
  MASKMIX="$bin" PREPARED="$root/data/ts" DATA="$root/shared" OUT="$res" WORK=/tmp/all DEVICE=cuda timeout 270 \
    scripts/reproduce_all.sh --stage compare > "$res/compare.log" 2>&1
  echo "compare exit $?"; grep -E "val|^\|" "$res/compare.log" | tail -n 14
fi
if has heads; then
  stage "Llama heads sweep (claim 5)"
  MASKMIX="$bin" PREPARED="$root/data/ts" DATA="$root/shared" OUT="$res" WORK=/tmp/all DEVICE=cuda timeout 300 \
    scripts/reproduce_all.sh --stage heads > "$res/heads.log" 2>&1
  echo "heads exit $?"; grep -E "took|: step" "$res/heads.log"; cat "$res/heads.md" 2>/dev/null
fi
if has context; then
  stage "context-length sweep (claim 8)"
  MASKMIX="$bin" PREPARED="$root/data/ts" DATA="$root/shared" OUT="$res" WORK=/tmp/all DEVICE=cuda timeout 420 \
    scripts/reproduce_all.sh --stage context > "$res/context.log" 2>&1
  echo "context exit $?"; grep -E "took|: step" "$res/context.log" | tail -n 16; cat "$res/context_runs.md" 2>/dev/null | head -n 60
fi
# Two variants A and B of `maskmix bench` alternated for 2 rounds (the card drifts between calls):
# bench_ab NAME_A NAME_B CMD_A... -- CMD_B... where each CMD is a command prefix (env settings and a binary)
bench_ab() {
  local a=$1 b=$2 configs=${AB_CONFIGS:-mixer:d512:l8:c512,mixer:d1024:l8:c512}
  shift 2
  local -a cmd_a=() cmd_b=()
  while [ "$1" != "--" ]; do cmd_a+=("$1"); shift; done
  shift
  cmd_b=("$@")
  for round in 1 2; do
    stage "$a / $b, round $round"
    for side in a b; do
      local name=$a cmd=("${cmd_a[@]}")
      [ "$side" = b ] && name=$b cmd=("${cmd_b[@]}")
      timeout 100 env "${cmd[@]}" bench --device cuda --configs "$configs" --batch 32 --steps 20 --out "$res/${name}_r$round.csv" 2>&1 |
        grep -v "^bench:" | tail -n 2
    done
  done
}
# the Hopper GELU-in-GEMM kernel (opt-in) on and off
if has fused_ab; then bench_ab fused_on fused_off MASKMIX_FUSED_GELU_GEMM=1 "$bin" -- "$bin"; fi
# BEFORE_BIN: a maskmix binary of an earlier commit, against this one
if has ab_before; then bench_ab ab_after ab_before "$bin" -- "$BEFORE_BIN"; fi
if has torch; then
  stage "PyTorch twin bench"
  PYTHONUNBUFFERED=1 timeout 300 python3 scripts/torch_twin.py --bench --batch 32 --steps 20 --out "$res/torch_bench_${tag}.csv" 2>&1 | grep -v Warning | tail -n 10
fi
if has speed; then  # SPEED_CONFIGS (default: bench's four) and SPEED_ROUNDS (default 3) narrow a quick check
  configs=${SPEED_CONFIGS:-mixer:d512:l8:c512,mixer:d1024:l8:c512,llama:d512:l8:h4:c512,llama:d1024:l8:h8:c512}
  for round in $(seq 1 "${SPEED_ROUNDS:-3}"); do
    stage "speed round $round: maskmix bench, then the PyTorch twin"
    timeout 120 "$bin" bench --device cuda --configs "$configs" --batch 32 --steps 20 --out "$res/speed_maskmix_r$round.csv" > /dev/null 2>&1
    PYTHONUNBUFFERED=1 timeout 200 python3 scripts/torch_twin.py --bench --configs "$configs" --batch 32 --steps 20 --out "$res/speed_torch_r$round.csv" \
      > /dev/null 2>&1
  done
  scripts/speed_table.sh "$res" > "$res/speed.md"; cat "$res/speed.md"
fi
tar czf "$out/results.tar.gz" -C "$(dirname "$res")" results
echo "== done ($(date +%T)); card: $card"
