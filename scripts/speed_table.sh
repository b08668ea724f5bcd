#!/usr/bin/env bash
# Markdown table of maskmix vs the PyTorch twin from alternated rounds (gpu_check.sh stage `speed`):
# per config and round, tokens/s of maskmix bench and of torch.compile and eager, their ratios, and the
# median ratio over rounds.
# Usage: scripts/speed_table.sh DIR [PREFIX]   (DIR holds PREFIX_maskmix_rN.csv and PREFIX_torch_rN.csv; PREFIX: speed)
set -euo pipefail
dir=${1:?usage: scripts/speed_table.sh DIR [PREFIX]}
prefix=${2:-speed}
ls "$dir/${prefix}"_maskmix_r*.csv > /dev/null 2>&1 || { echo "speed_table: no ${prefix}_maskmix_r*.csv in $dir" >&2; exit 1; }
echo "| config | round | maskmix tok/s | torch.compile tok/s | ratio | eager tok/s | ratio |"
echo "|---|---|---|---|---|---|---|"
for m in "$dir/${prefix}"_maskmix_r*.csv; do
  round=${m##*_r}; round=${round%.csv}
  t="$dir/${prefix}_torch_r$round.csv"
  [ -f "$t" ] || continue
  # maskmix configs carry the vocab (":v4096"); the twin's do not
  awk -F, -v round="$round" 'FNR == 1 { next }
    FILENAME == ARGV[1] { sub(/:v[0-9]+$/, "", $1); mm[$1] = $3; order[++n] = $1; next }
    $2 == "compile" { compiled[$1] = $4 } $2 == "eager" { eager[$1] = $4 }
    END { for (i = 1; i <= n; ++i) { c = order[i]; if (!(c in compiled)) continue
            printf "| %s | %s | %d | %d | %.2fx | %d | %.2fx |\n", c, round, mm[c], compiled[c], mm[c] / compiled[c], eager[c], mm[c] / eager[c] } }' "$m" "$t"
done | sort -t'|' -k2,2 -k3,3n
echo
echo "Median over rounds of maskmix / torch.compile:"
for m in "$dir/${prefix}"_maskmix_r*.csv; do
  round=${m##*_r}; round=${round%.csv}
  awk -F, 'FNR == 1 { next } FILENAME == ARGV[1] { sub(/:v[0-9]+$/, "", $1); mm[$1] = $3; next }
    $2 == "compile" && ($1 in mm) { printf "%s %.4f\n", $1, mm[$1] / $4 }' "$m" "$dir/${prefix}_torch_r$round.csv"
done | sort -k1,1 -k2,2n | awk '{ v[$1] = v[$1] " " $2; n[$1]++ }
  END { for (c in v) { split(substr(v[c], 2), a, " "); printf "- %s: %.2fx (rounds:%s)\n", c, a[int((n[c] + 1) / 2)], v[c] } }' | sort
