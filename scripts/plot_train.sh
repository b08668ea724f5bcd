#!/usr/bin/env bash
# Plots train.csv files (train loss and validation loss against step) into one PNG with gnuplot.
# Usage: [YMAX=6] scripts/plot_train.sh OUT.png "TITLE" label1=run1/train.csv label2=run2/train.csv ...
set -euo pipefail
out=$1; title=$2; shift 2
command -v gnuplot >/dev/null || { echo "plot_train.sh: gnuplot not found (make deps installs gnuplot-nox)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
plots=()
i=0
for spec in "$@"; do
  label=${spec%%=*}; csv=${spec#*=}
  [ -f "$csv" ] || { echo "plot_train.sh: $csv: no such file" >&2; exit 1; }
  i=$((i + 1))
  # columns: step(1) train_loss(5) val_loss(6)
  awk -F, 'NR > 1 && $5 != "" {print $1, $5}' "$csv" > "$tmp/train$i"
  awk -F, 'NR > 1 && $6 != "" {print $1, $6}' "$csv" > "$tmp/val$i"
  plots+=("'$tmp/train$i' using 1:2 with lines lw 1 dt 2 lc $i title '$label train'")
  plots+=("'$tmp/val$i' using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc $i title '$label valid'")
done
joined=$(IFS=,; echo "${plots[*]}")
gnuplot <<GP
set terminal pngcairo size 900,560 font ",11"
set output '$out'
set title "$title"
set xlabel 'step'
set ylabel 'cross-entropy (nats/token)'
set yrange [*:${YMAX:-*}]
set grid
set key top right
plot $joined
GP
echo "wrote $out"
