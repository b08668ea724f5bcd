#!/usr/bin/env bash
# From retrieval.csv: a markdown table of mean top-1 (and standard error over seeds) per label and n, and a
# PNG of top-1 against n (log scale) for the cosine/BM25/random sweeps on each summary set.
# Usage: scripts/plot_retrieval.sh results/retrieval.csv results/retrieval.png
set -euo pipefail
csv=$1; png=$2
md="${png%.png}.md"
awk -F, 'NR > 1 { k = $1 "|" $3; n[k]++; s[k] += $6; ss[k] += $6 * $6 } END {
  print "| method (label) | n | top-1 | std. err. | seeds |"; print "|---|---|---|---|---|"
  for (k in n) { split(k, f, "|"); m = s[k] / n[k]; v = (n[k] > 1) ? (ss[k] / n[k] - m * m) * n[k] / (n[k] - 1) : 0; if (v < 0) v = 0
    printf "| %s | %d | %.3f | %.3f | %d |\n", f[1], f[2], m, sqrt(v / n[k]), n[k] } }' "$csv" | { read -r a; read -r b; echo "$a"; echo "$b"; sort -t'|' -k2,2 -k3,3n; } > "$md"
cat "$md"
command -v gnuplot >/dev/null || { echo "plot_retrieval.sh: gnuplot not found" >&2; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for tag in paper-style hard; do
  plots=(); i=0
  for label in $(awk -F, -v t="$tag" 'NR > 1 && $1 ~ t"$" && $2 != "model" {print $1}' "$csv" | sort -u); do
    i=$((i + 1))
    awk -F, -v l="$label" 'NR > 1 && $1 == l { s[$3] += $6; c[$3]++ } END { for (k in s) print k, s[k] / c[k] }' "$csv" | sort -n > "$tmp/$tag$i"
    plots+=("'$tmp/$tag$i' using 1:2 with linespoints lw 2 pt 7 title '${label%-$tag}'")
  done
  [ ${#plots[@]} -gt 0 ] || continue
  echo "set title 'Summary -> story retrieval, $tag summaries (500 validation pairs + distractors)'" > "$tmp/title_$tag"
  echo "plot $(IFS=,; echo "${plots[*]}")" > "$tmp/plot_$tag"
done
gnuplot <<GP
set terminal pngcairo size 1200,520 font ",10"
set output '$png'
set multiplot layout 1,2
set logscale x 2; set xlabel 'candidates n'; set ylabel 'top-1 accuracy'; set yrange [0:1.02]; set grid; set key top right font ",9"
$( [ -f "$tmp/title_paper-style" ] && cat "$tmp/title_paper-style" "$tmp/plot_paper-style" )
$( [ -f "$tmp/title_hard" ] && cat "$tmp/title_hard" "$tmp/plot_hard" )
unset multiplot
GP
echo "wrote $png"
