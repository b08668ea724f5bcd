#!/usr/bin/env bash
# Claim 3 (retrieval): a masked mixer and a Llama transformer are CLM-trained under the same budget on the
# prepared TinyStories shards; their frozen embeddings (token -2, left padding) feed (a) the paper's
# retrieval model (bidirectional mixer over 1 summary + n-1 stories) and (b) plain cosine; each model is
# also InfoNCE fine-tuned. Controls: an untrained mixer, BM25 and random. Both pair sets are used: the
# paper-style summaries (BM25 solves them) and the paraphrased "hard" ones (only meaning matches).
# Usage: scripts/reproduce_retrieval.sh [--quick]    env: DEVICE, DATA (prepared folder), OUT, WORK, PAIRS
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
. scripts/lib.sh
device=${DEVICE:-$(default_device)}
data=${DATA:-data/ts}
out=${OUT:-results}
work=${WORK:-runs/retrieval}
pairs=${PAIRS:-../shared/data/retrieval}
bin=${MASKMIX:-./maskmix}
mkdir -p "$out" "$work"
csv="$out/retrieval.csv"
rm -f "$csv" "${csv%.csv}.meta"
if [ $quick = 1 ]; then
  mixer=mixer:d32:l2:c64; llama=llama:d32:l2:h4:c64; train=(--steps 30); ret_epochs=2; nce=(--epochs 1 --n 8 --max-pairs 100); seeds=2; pool=(); sizes=(--sizes 32,128)
else
  mixer=mixer:d512:l8:c512; llama=llama:d512:l8:h4:c512; train=(--epochs 2); ret_epochs=${RET_EPOCHS:-60}; nce=(--epochs 1 --n 32); seeds=5
  pool=(yes); sizes=()
fi
start=$(date +%s)
log() { echo "== $* ($(( $(date +%s) - start )) s)"; }

log "CLM training: $mixer and $llama, same budget (${train[*]}, batch 32, lr 1e-3) on $device"
for spec in mixer=$mixer llama=$llama; do
  name=${spec%%=*}; model=${spec#*=}
  "$bin" train --device "$device" --model "$model" --data "$data" --batch 32 "${train[@]}" --warmup 100 --lr 1e-3 --eval-every 100000 \
    --log-every 50 --out "$work/$name" 2>&1 | grep -E "^step" | tail -n 1
done

embed_all() {  # name checkpoint-args...
  local name=$1; shift
  for set in pairs_train pairs_valid pairs_hard_train pairs_hard_valid; do
    for field in summary story; do
      "$bin" embed --device "$device" --data "$data" "$@" --pairs "$pairs/$set.jsonl" --field $field --out "$work/emb_${name}_${set}_$field.safetensors" 2>/dev/null
    done
  done
  if [ ${#pool[@]} -gt 0 ]; then "$bin" embed --device "$device" --data "$data" "$@" --split train --out "$work/emb_${name}_pool.safetensors" 2>/dev/null; fi
}
log "embeddings (token -2, left padding)"
embed_all mixer --checkpoint "$work/mixer/model.safetensors"
embed_all llama --checkpoint "$work/llama/model.safetensors"
embed_all untrained --untrained "$mixer"

evaluate() {  # label name set [extra eval args]
  local label=$1 name=$2 set=$3; shift 3
  local extra=()
  [ ${#pool[@]} -gt 0 ] && extra=(--pool "$work/emb_${name}_pool.safetensors")
  "$bin" retrieve eval --method cosine --queries "$work/emb_${name}_${set}_valid_summary.safetensors" \
    --candidates "$work/emb_${name}_${set}_valid_story.safetensors" "${extra[@]}" "${sizes[@]}" --seeds $seeds --label "$label" --out "$csv" "$@" | tail -n +2
}
for set in pairs pairs_hard; do
  tag=$([ $set = pairs ] && echo paper-style || echo hard)
  log "$tag summaries: cosine on frozen embeddings"
  for name in mixer llama untrained; do evaluate "$name-cosine-$tag" $name $set; done
  log "$tag summaries: retrieval model (n = 32) on frozen embeddings"
  for name in mixer llama untrained; do
    "$bin" retrieve train --device "$device" --train-queries "$work/emb_${name}_${set}_train_summary.safetensors" \
      --train-candidates "$work/emb_${name}_${set}_train_story.safetensors" --test-queries "$work/emb_${name}_${set}_valid_summary.safetensors" \
      --test-candidates "$work/emb_${name}_${set}_valid_story.safetensors" --n 32 --epochs $ret_epochs --out "$work/ret_${name}_$set" 2>&1 | tail -n 2 | head -n 1
    "$bin" retrieve eval --method model --device "$device" --retrieval-model "$work/ret_${name}_$set/retrieval.safetensors" \
      --queries "$work/emb_${name}_${set}_valid_summary.safetensors" --candidates "$work/emb_${name}_${set}_valid_story.safetensors" \
      --seeds $seeds --label "$name-model-$tag" --out "$csv" | tail -n +2
  done
  log "$tag summaries: InfoNCE fine-tuning (tau 0.02) then cosine"
  for name in mixer llama; do
    "$bin" retrieve infonce --device "$device" --checkpoint "$work/$name/model.safetensors" --data "$data" --pairs "$pairs/${set}_train.jsonl" \
      "${nce[@]}" --out "$work/nce_${name}_$set" 2>&1 | grep -E "^infonce" | tail -n 1
    for field in summary story; do
      "$bin" embed --device "$device" --data "$data" --checkpoint "$work/nce_${name}_$set/model.safetensors" --pairs "$pairs/${set}_valid.jsonl" \
        --field $field --out "$work/emb_nce_${name}_${set}_valid_$field.safetensors" 2>/dev/null
    done
    [ ${#pool[@]} -gt 0 ] && "$bin" embed --device "$device" --data "$data" --checkpoint "$work/nce_${name}_$set/model.safetensors" --split train \
      --out "$work/emb_nce_${name}_pool.safetensors" 2>/dev/null
    evaluate "$name-infonce-$tag" nce_$name $set
  done
  log "$tag summaries: BM25 and random"
  ptexts=(); [ ${#pool[@]} -gt 0 ] && ptexts=(--pool-texts "$(dirname "$pairs")/tinystories/train.txt")
  "$bin" retrieve eval --method bm25 --pairs "$pairs/${set}_valid.jsonl" "${ptexts[@]}" "${sizes[@]}" --seeds $seeds --label "bm25-$tag" --out "$csv" | tail -n +2
  "$bin" retrieve eval --method random --pairs "$pairs/${set}_valid.jsonl" "${ptexts[@]}" "${sizes[@]}" --seeds $seeds --label "random-$tag" --out "$csv" | tail -n +2
done
printf 'script: scripts/reproduce_retrieval.sh%s\ndevice: %s\nmodels: %s, %s (CLM %s, batch 32, lr 1e-3)\nelapsed_s: %s\n' "$([ $quick = 1 ] && echo ' --quick')" \
  "$device" "$mixer" "$llama" "${train[*]}" "$(( $(date +%s) - start ))" >> "${csv%.csv}.meta"
log "done: $csv"
if command -v gnuplot >/dev/null; then scripts/plot_retrieval.sh "$csv" "$out/retrieval.png"; else echo "(no gnuplot here: run scripts/plot_retrieval.sh $csv later)"; fi
