#!/usr/bin/env bash
# Where one kernel's time goes (Nsight Compute): utilisation of the tensor pipe, shared memory and DRAM,
# achieved occupancy, and the warp stall reasons (cycles stalled per issued instruction), averaged over
# the sampled launches of each kernel whose name matches REGEX.
# Usage on the device: dev/kernel_detail.sh BIN CONFIG REGEX [skip] [count]
set -euo pipefail
bin=$1 config=$2 regex=$3 skip=${4:-40} count=${5:-12}
stall=smsp__average_warps_issue_stalled
metrics=gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
metrics+=,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,smsp__issue_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem
for s in barrier long_scoreboard short_scoreboard mio_throttle math_pipe_throttle wait not_selected lg_throttle; do
  metrics+=,${stall}_${s}_per_issue_active.ratio
done
ncu --csv --metrics "$metrics" --kernel-name "regex:$regex" --launch-skip "$skip" --launch-count "$count" \
  "$bin" bench --configs "$config" --steps 2 --warmup-steps 3 --out /tmp/kernel_detail_bench.csv 2>/dev/null |
  python3 -c '
import csv, sys, collections
rows = [r for r in csv.reader(l for l in sys.stdin if l.startswith("\""))]
head, body = rows[0], rows[1:]
name, metric, value = head.index("Kernel Name"), head.index("Metric Name"), head.index("Metric Value")
sums = collections.defaultdict(lambda: collections.defaultdict(list))
for r in body:
    k = r[name].replace("(anonymous namespace)::", "").replace("void ", "").split("(")[0][:60]
    sums[k][r[metric].replace("smsp__average_warps_issue_stalled_", "stall_").replace("_per_issue_active.ratio", "")].append(float(r[value].replace(",", "")))
for k, ms in sums.items():
    print(f"## {k}")
    for m, v in sorted(ms.items()):
        print(f"  {m:70s} {sum(v)/len(v):12.2f}")
'
