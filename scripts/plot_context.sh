#!/usr/bin/env bash
# From the context sweep's compare CSV (scripts/reproduce_all.sh --stage context): validation loss at the
# end of equal-token runs against n_ctx, one line per model family/width, as a PNG and a markdown table.
# Usage: scripts/plot_context.sh results/context.csv results/context.png
set -euo pipefail
csv=$1; png=$2
md="${png%.png}.md"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# model descriptor -> family (kind + width) and context; columns: 2 model, 9 val_loss_end, 7 tokens/s
awk -F, 'NR > 1 { n = split($2, p, ":"); fam = p[1] ":" p[2]; ctx = ""; for (i = 3; i <= n; ++i) if (p[i] ~ /^c[0-9]+$/) ctx = substr(p[i], 2)
  print fam, ctx, $9, $7, $3 }' "$csv" | sort -k1,1 -k2,2n > "$tmp/rows"
{
  echo "| model | n_ctx | parameters | val loss (end) | tokens/s |"
  echo "|---|---|---|---|---|"
  awk '{ printf "| %s | %s | %.1f M | %.4f | %s |\n", $1, $2, $5 / 1e6, $3, $4 }' "$tmp/rows"
} > "$md"
cat "$md"
command -v gnuplot >/dev/null || { echo "plot_context.sh: gnuplot not found" >&2; exit 0; }
plots=(); i=0
for fam in $(awk '{print $1}' "$tmp/rows" | sort -u); do
  i=$((i + 1))
  awk -v f="$fam" '$1 == f { print $2, $3 }' "$tmp/rows" > "$tmp/f$i"
  plots+=("'$tmp/f$i' using 1:2 with linespoints lw 2 pt 7 title '$fam'")
done
gnuplot <<GP
set terminal pngcairo size 900,520 font ",10"
set output '$png'
set title 'Context sweep: validation loss after equal tokens (packed rows, same tokens per step)'
set logscale x 2; set xlabel 'n_{ctx}'; set ylabel 'validation loss (nats/token)'; set grid; set key top left
plot $(IFS=,; echo "${plots[*]}")
GP
echo "wrote $png"
