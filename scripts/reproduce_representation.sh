#!/usr/bin/env bash
# Claim 1 (input representation): untrained and trained masked mixers vs Llama transformers, inverted
# by gradient descent under two search protocols:
#   paper: N(0,1) start, 500 plain GD steps on summed L1, step 0.02 -> 0.002 (the paper's code)
#   fair:  Adam from N(0, std(W_E)), step 0.1*std -> 0.01*std (a search scaled to the embedding)
# under each family's own init (--init paper) and under matched inits (torch, hf). Trained models come
# from the prepared TinyStories shards, with a checkpoint per epoch (metric vs step).
# Usage: scripts/reproduce_representation.sh [--quick]     env: DEVICE, DATA (prepared folder), OUT, WORK
#   PART=untrained | trained: one half (untrained starts representation.csv, trained appends to it);
#   PART=trained KINDS=llama WIDTHS=1024 redoes one model's rows (append, then drop the old ones)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
. scripts/lib.sh
device=${DEVICE:-$(default_device)}
data=${DATA:-data/ts}
out=${OUT:-results}
work=${WORK:-runs/representation}
bin=${MASKMIX:-./maskmix}
mkdir -p "$out" "$work"
csv="$out/representation.csv"
part=${PART:-all}  # all, untrained or trained
[ "$part" = trained ] || rm -f "$csv" "${csv%.csv}.meta"
if [ $quick = 1 ]; then
  widths=${WIDTHS:-64}; matched=64; ctx=32; layers=2; train=(--steps 60); batch=8; stories=2; steps=60; fair_steps=60; heads=4
else
  widths=${WIDTHS:-256 512 1024}; matched=512; ctx=512; layers=8; train=(--epochs 2); batch=32; stories=10; steps=500; fair_steps=500; heads=4
fi
paper=(--steps $steps)
fair=(--steps $fair_steps --optimizer adam --search-init embedding --lr 0.1 --lr-end 0.01 --lr-scale auto)
start=$(date +%s)
inv() { "$bin" invert --device "$device" --data "$data" --stories $stories --out "$csv" "$@" | tail -n 1; }
desc() { [ "$1" = mixer ] && echo "mixer:d$2:l$layers:c$ctx" || echo "llama:d$2:l$layers:h$heads:c$ctx"; }

kinds=${KINDS:-mixer llama}
if [ "$part" != trained ]; then
echo "== untrained models, each family's own init (paper) and matched inits ($device)"
for d in $widths; do
  for kind in mixer llama; do
    inv --untrained "$(desc $kind $d)" --init paper "${paper[@]}"
    inv --untrained "$(desc $kind $d)" --init paper "${fair[@]}"
  done
done
for init in torch hf; do
  for kind in mixer llama; do
    inv --untrained "$(desc $kind $matched)" --init $init "${paper[@]}"
    inv --untrained "$(desc $kind $matched)" --init $init "${fair[@]}"
  done
done
fi

[ "$part" = untrained ] && exit 0
echo "== trained models (${train[*]}, batch $batch), metric vs step"
rows=$(grep -o '"train":{[^}]*"stories":[0-9]*' "$data/manifest.json" | grep -o '[0-9]*$')
per_epoch=$(( (rows + batch - 1) / batch ))
[ $quick = 1 ] && per_epoch=30
for d in $widths; do
  for kind in $kinds; do
    run="$work/${kind}_d$d"
    rm -rf "$run"
    "$bin" train --device "$device" --model "$(desc $kind $d)" --data "$data" --batch $batch "${train[@]}" --warmup 100 --lr 1e-3 \
      --eval-every $per_epoch --ckpt-every $(( per_epoch / 2 > 0 ? per_epoch / 2 : 1 )) --keep-checkpoints --log-every 50 --out "$run" 2>&1 | grep -E "^step .*val" | tail -n 1
    inv --checkpoints "$run" "${paper[@]}"
    inv --checkpoint "$run/model.safetensors" "${fair[@]}"
    [ "${KEEP_RUNS:-0}" = 1 ] || rm -rf "$run/checkpoints"
  done
done
printf 'script: scripts/reproduce_representation.sh%s\ndevice: %s\nelapsed_s: %s\n' "$([ $quick = 1 ] && echo ' --quick')" "$device" "$(( $(date +%s) - start ))" >> "${csv%.csv}.meta"
echo "== done in $(( $(date +%s) - start )) s: $csv"
if command -v gnuplot >/dev/null; then scripts/plot_representation.sh "$csv" "$out/representation.png"; else echo "(no gnuplot here: run scripts/plot_representation.sh $csv later)"; fi
