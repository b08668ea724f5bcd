#!/usr/bin/env bash
# Per-kernel GPU times of one training step (Nsight Compute, durations only, clocks left as the card
# runs them), summed by kernel name.
# Usage on the device: dev/kernel_profile.sh BIN CONFIG [skip] [count]
# (skip: launches of warm-up steps to pass over; count: launches to record, more than one step's: the
# table sums exactly one step, from one embedding-forward launch (a step's first kernel) up to the next,
# when the window holds two)
set -euo pipefail
bin=$1 config=$2 skip=${3:-600} count=${4:-300}
ncu --csv --clock-control none --metrics gpu__time_duration.sum --launch-skip "$skip" --launch-count "$count" \
  "$bin" bench --configs "$config" --steps 2 --warmup-steps 3 --out /tmp/kernel_profile_bench.csv 2>/dev/null |
  python3 -c '
import csv, sys, collections
rows = [r for r in csv.reader(l for l in sys.stdin if l.startswith("\""))]
head, body = rows[0], rows[1:]
name, value = head.index("Kernel Name"), head.index("Metric Value")
steps = [i for i, r in enumerate(body) if "embedding_forward" in r[name]]
if len(steps) >= 2:
    body = body[steps[0]:steps[1]]  # one whole step
    print("one training step (from one embedding-forward launch to the next): ", end="")
else:
    print("a window of launches (fewer than two steps begin in it): ", end="")
total = collections.defaultdict(float); calls = collections.Counter()
for r in body:
    k = r[name].replace("(anonymous namespace)::", "").replace("void ", "").split("(")[0][:70]
    total[k] += float(r[value].replace(",", "")) / 1e3; calls[k] += 1
s = sum(total.values())
print(f"{len(body)} kernel launches, {s/1e3:.2f} ms of GPU time\n")
print("| ms | share | launches | kernel |")
print("|---|---|---|---|")
for k, v in sorted(total.items(), key=lambda kv: -kv[1])[:25]:
    print(f"| {v/1e3:.3f} | {100*v/s:.1f}% | {calls[k]} | `{k}` |")
'
