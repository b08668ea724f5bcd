#!/usr/bin/env bash
# Times `maskmix prepare` on ~100 MB of TinyStories text (the shipped subset repeated) with the shipped
# tokenizer, and writes results/prepare_speed.csv + .meta. Usage: scripts/bench_prepare.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${DATA:-../shared/data}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$data/tinystories/train.txt"
while [ "$(stat -c %s "$work/big.txt" 2>/dev/null || echo 0)" -lt 100000000 ]; do cat "$src" >> "$work/big.txt"; done
bytes=$(stat -c %s "$work/big.txt")
start=$(date +%s.%N)
./maskmix prepare --input "$work/big.txt" --valid "$data/tinystories/valid.txt" --tokenizer "$data/tokenizers/tok4096.model" --out "$work/out" >"$work/log" 2>&1
end=$(date +%s.%N)
seconds=$(echo "$end - $start" | bc -l)
mkdir -p results
printf 'bytes,seconds,mb_per_s,cores\n%s,%.2f,%.2f,%s\n' "$bytes" "$seconds" "$(echo "$bytes / 1000000 / $seconds" | bc -l)" "$(nproc)" > results/prepare_speed.csv
printf 'command: scripts/bench_prepare.sh %s\ncommit: %s\ncard: cpu: %s (%s cores)\ndate: %s\n' "$data" "$(git rev-parse --short=12 HEAD)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)" "$(date -u +%FT%TZ)" > results/prepare_speed.meta
cat results/prepare_speed.csv
