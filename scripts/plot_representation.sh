#!/usr/bin/env bash
# From representation.csv: a markdown table (mean Hamming metric per model, init, step and protocol) on
# stdout and in OUT.md, and a PNG of the metric against training step for the trained runs.
# Usage: scripts/plot_representation.sh results/representation.csv results/representation.png
set -euo pipefail
csv=$1; png=$2
md="${png%.png}.md"
# columns: model(1) init(2) step(3) layer(4) drop(5) story(6) n(7) hamming(8) top1(9) loss(10) rel(11) dropped(12) dtop1(13) protocol(14)
awk -F, 'NR > 1 {
  split($14, p, ":"); proto = (p[1] == "gd" ? "paper" : "fair");
  key = $1 "|" $2 "|" $3 "|" proto; n[key]++; h[key] += $8; t[key] += $9; r[key] += $11
} END {
  print "| model | init | step | protocol | hamming (top-5) | top-1 | loss / abs(O*) |"; print "|---|---|---|---|---|---|---|"
  for (k in n) { split(k, f, "|"); printf "| %s | %s | %s | %s | %.3f | %.3f | %.3g |\n", f[1], f[2], f[3], f[4], h[k]/n[k], t[k]/n[k], r[k]/n[k] }
}' "$csv" | { read -r h1; read -r h2; echo "$h1"; echo "$h2"; sort -t'|' -k2,2 -k3,3 -k5,5 -k4,4n; } > "$md"
cat "$md"
command -v gnuplot >/dev/null || { echo "plot_representation.sh: gnuplot not found" >&2; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
plots=(); i=0
for model in $(awk -F, 'NR > 1 && $3 > 0 {print $1}' "$csv" | sort -u); do
  for proto in paper fair; do
    f="$tmp/$i"
    awk -F, -v m="$model" -v pr="$proto" 'NR > 1 && $1 == m && $2 == "paper" { split($14, p, ":"); q = (p[1] == "gd" ? "paper" : "fair");
      if (q == pr) { s[$3] += $8; c[$3]++ } } END { for (k in s) print k, s[k]/c[k] }' "$csv" | sort -n > "$f"
    [ -s "$f" ] || continue
    i=$((i + 1))
    short=$(echo "$model" | sed 's/:v[0-9]*//; s/:c[0-9]*//')
    style=$([ "$proto" = paper ] && echo "pt 7 dt 1" || echo "pt 5 dt 2")
    plots+=("'$f' using 1:2 with linespoints lw 2 $style title '$short ($proto search)'")
  done
done
[ ${#plots[@]} -gt 0 ] || exit 0
gnuplot <<GP
set terminal pngcairo size 1000,600 font ",10"
set output '$png'
set title "Input recovery vs training step (own init; 0 = all tokens recovered, 1 = none)"
set xlabel 'training step'; set ylabel 'Hamming metric (top-5), 10 validation stories'
set yrange [-0.02:1.02]; set grid; set key outside right
plot $(IFS=,; echo "${plots[*]}")
GP
echo "wrote $png"
