#!/usr/bin/env bash
# Every table and figure we can reproduce, from scratch, into $OUT (results/ on a GPU, results/quick with
# --quick): the TinyStories comparison under one equal budget (flat and expanded mixer, llama h4, GPT,
# hybrid at d512; mixer vs llama at d256 and d1024), the context-length sweep on packed rows, the
# representation study (claim 1), retrieval (claim 3), `maskmix compare` tables and gnuplot PNGs.
# Usage: scripts/reproduce_all.sh [--quick] [--stage prepare|compare|heads|context|representation|representation_trained|retrieval]...
#   env: DATA (shipped data, default ../shared/data), DEVICE, OUT, WORK
# Each full-size stage fits one 10-minute GPU command; run them one by one with --stage.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; stages=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --stage) stages+=("$2"); shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "reproduce_all.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#stages[@]} -gt 0 ] || stages=(prepare compare heads context representation representation_trained retrieval)
shared=${DATA:-../shared/data}
. scripts/lib.sh
device=${DEVICE:-$(default_device)}
out=${OUT:-$([ $quick = 1 ] && echo results/quick || echo results)}
work=${WORK:-runs/$([ $quick = 1 ] && echo quick || echo all)}
bin=${MASKMIX:-./maskmix}
prepared=${PREPARED:-data/ts}
mkdir -p "$out" "$work"
t0=$(date +%s)
stage_start() { echo; echo "=== stage $1 ($device, $(( $(date +%s) - t0 )) s elapsed)"; s0=$(date +%s); }
stage_end() { echo "=== stage $1 took $(( $(date +%s) - s0 )) s"; }
has() { [[ " ${stages[*]} " == *" $1 "* ]]; }
[ -x "$bin" ] || make -j"$(nproc)" maskmix >/dev/null

if [ $quick = 1 ]; then
  d=32; dsmall=16; dlarge=48; layers=2; ctx=64; budget=(--steps 40 --warmup 10); batch=8; ctxs="16 32"; ctx_tokens=128; ctx_budget=(--steps 30 --warmup 10)
else
  d=512; dsmall=256; dlarge=1024; layers=8; ctx=512; budget=(--epochs 2 --warmup 100); batch=32; ctxs="32 128 512 1024"; ctx_tokens=8192; ctx_budget=(--steps 550 --warmup 50)
fi

if has prepare; then
  stage_start prepare
  [ -f "$prepared/manifest.json" ] || "$bin" prepare --input "$shared/tinystories/train.txt" --valid "$shared/tinystories/valid.txt" \
    --tokenizer "$shared/tokenizers/tok4096.model" --out "$prepared"
  stage_end prepare
fi

train_run() {  # name descriptor extra-args...
  local name=$1 model=$2; shift 2
  rm -rf "${work:?}/$name"
  "$bin" train --device "$device" --model "$model" --data "$prepared" --batch $batch --lr 1e-3 --eval-every 20 --log-every 10 \
    --out "$work/$name" "$@" 2>&1 | grep -E "^step .*val" | tail -n 1 | sed "s/^/$name: /"
}

if has compare; then
  stage_start compare
  train_run mixer "mixer:d$d:l$layers:c$ctx" "${budget[@]}"
  train_run mixer_expanded "mixer:d$d:l$layers:c$ctx:expanded2" "${budget[@]}"
  train_run llama "llama:d$d:l$layers:h4:c$ctx" "${budget[@]}"
  train_run gpt "gpt:d$d:l$layers:h4:c$ctx" "${budget[@]}"
  train_run hybrid "hybrid:d$d:l$layers:h4:c$ctx" "${budget[@]}"
  train_run mixer_small "mixer:d$dsmall:l$layers:c$ctx" "${budget[@]}"
  train_run llama_small "llama:d$dsmall:l$layers:h4:c$ctx" "${budget[@]}"
  train_run mixer_large "mixer:d$dlarge:l$layers:c$ctx" "${budget[@]}"
  train_run llama_large "llama:d$dlarge:l$layers:h4:c$ctx" "${budget[@]}"
  "$bin" compare "$work"/{mixer,mixer_expanded,llama,gpt,hybrid,mixer_small,llama_small,mixer_large,llama_large} --out "$out/compare.csv" | tee "$out/compare.md"
  for r in mixer mixer_expanded llama gpt hybrid; do cp "$work/$r/train.csv" "$out/train_$r.csv"; cp "$work/$r/train.meta" "$out/train_$r.meta"; done
  command -v gnuplot >/dev/null && scripts/plot_train.sh "$out/compare.png" "TinyStories, d$d l$layers c$ctx, equal budget ($device)" \
    mixer="$out/train_mixer.csv" expanded="$out/train_mixer_expanded.csv" llama="$out/train_llama.csv" gpt="$out/train_gpt.csv" hybrid="$out/train_hybrid.csv"
  stage_end compare
fi

if has heads; then  # claim 5: attention heads of a small Llama under the same budget
  stage_start heads
  for h in 2 4 8 16; do train_run "heads$h" "llama:d$d:l$layers:h$h:c$ctx" "${budget[@]}"; done
  "$bin" compare "$work"/heads{2,4,8,16} --out "$out/heads.csv" | tee "$out/heads.md"
  stage_end heads
fi

if has context; then
  stage_start context
  rows=()
  # The paper's protocol (PAPER.md 3.5): packed rows and the same tokens per step at every context
  # (batch = ctx_tokens / n_ctx), so equal steps are equal tokens; mixer and llama at equal width, and
  # the paper's matched-memory pair (the mixer at twice the width).
  for c in $ctxs; do
    cb=$(( ctx_tokens / c ))
    batch=$cb train_run "ctx${c}_mixer" "mixer:d$d:l$layers:c$c" --padding packed "${ctx_budget[@]}"
    batch=$cb train_run "ctx${c}_mixer_wide" "mixer:d$((2 * d)):l$layers:c$c" --padding packed "${ctx_budget[@]}"
    batch=$cb train_run "ctx${c}_llama" "llama:d$d:l$layers:h4:c$c" --padding packed "${ctx_budget[@]}"
    rows+=("$work/ctx${c}_mixer" "$work/ctx${c}_mixer_wide" "$work/ctx${c}_llama")
  done
  # the loss depends on the context length itself: compare per context, then collect
  : > "$out/context_runs.md"
  for c in $ctxs; do "$bin" compare "$work/ctx${c}_mixer" "$work/ctx${c}_mixer_wide" "$work/ctx${c}_llama" | tee -a "$out/context_runs.md"; done
  "$bin" compare "${rows[@]}" --out "$out/context.csv" > /dev/null
  command -v gnuplot >/dev/null && scripts/plot_context.sh "$out/context.csv" "$out/context.png" > /dev/null
  stage_end context
fi

# claim 1 in two stages that each fit a 10-minute GPU slot: untrained models (starts representation.csv),
# then the trained ones (appended)
for part in untrained trained; do
  name=representation; [ $part = untrained ] || name=representation_trained
  has $name || continue
  stage_start $name
  PART=$part MASKMIX="$bin" DATA="$prepared" OUT="$out" WORK="$work/representation" DEVICE="$device" \
    scripts/reproduce_representation.sh $([ $quick = 1 ] && echo --quick) | tail -n 3
  stage_end $name
done

if has retrieval; then
  stage_start retrieval
  MASKMIX="$bin" DATA="$prepared" PAIRS="$shared/retrieval" OUT="$out" WORK="$work/retrieval" DEVICE="$device" scripts/reproduce_retrieval.sh $([ $quick = 1 ] && echo --quick) | tail -n 3
  stage_end retrieval
fi
echo
echo "all stages done in $(( $(date +%s) - t0 )) s; CSV, tables and PNGs are in $out/"
ls "$out"
