#!/usr/bin/env bash
# Benchmarks of the built-in bone model (issue 6), on two cores:
#   1. quality on held-out phantoms vs the best single-threshold baseline,
#      and on a real head CT (invesalius-examples) vs its bone preset;
#   2. training on 12 small phantoms (target ≤ 60 s);
#   3. predicting a full 512×512×~300 phantom (target ≤ 10 s, ≤ 2 GB);
#   4. `medcad segment baseline` side by side with its anchor, the same
#      algorithm in Python (nibabel + scipy.ndimage), on that volume.
# Prints medians of RUNS runs and the ratio. Usage: bench/segment/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
# Two CPUs on different physical cores (not two hyperthreads of one core),
# unless CORES says otherwise.
pick_cores() {
  local seen="" picked=() c key
  for c in /sys/devices/system/cpu/cpu[0-9]*; do
    [[ -r $c/topology/core_id ]] || continue
    key="$(cat "$c/topology/physical_package_id" 2>/dev/null):$(cat "$c/topology/core_id")"
    [[ " $seen " == *" $key "* ]] && continue
    seen="$seen $key"
    picked+=("${c##*cpu}")
    ((${#picked[@]} == 2)) && break
  done
  if ((${#picked[@]} == 2)); then echo "${picked[0]},${picked[1]}"; else echo 0,1; fi
}
CORES=${CORES:-$(pick_cores)}
PY=${PY:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -n "${MEDCAD:-}" ]]; then cp "$MEDCAD" "$work/medcad"; else go build -o "$work/medcad" ./cmd/medcad; fi
if [[ -n "${QUALITY:-}" ]]; then cp "$QUALITY" "$work/quality"; else go build -o "$work/quality" ./bench/segment/quality; fi
medcad="$work/medcad"

pin=()
if command -v taskset >/dev/null; then pin=(taskset -c "$CORES"); fi
# measure CMD…: prints "seconds peak_rss_kB" of one run
measure() {
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null
    cat "$work/t"
  else
    local s e
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    echo "$(echo "$e - $s" | bc) 0"
  fi
}
# median of RUNS runs: prints "median_seconds max_rss_MB"
median() {
  local out=()
  for _ in $(seq "$RUNS"); do out+=("$(measure "$@")"); done
  printf '%s\n' "${out[@]}" | sort -n | awk -v n="$RUNS" '{s[NR]=$1; if ($2>m) m=$2} END {printf "%.2f %.0f\n", s[int((n+1)/2)], m/1024}'
}

echo "== machine: $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs visible, pinned to CPUs $CORES (thread siblings: $(cat /sys/devices/system/cpu/cpu${CORES%%,*}/topology/thread_siblings_list 2>/dev/null || echo '?')); $(go version 2>/dev/null || echo 'go: prebuilt binary')"
echo
echo "== 1. quality: 12 training, 8 held-out test phantoms (small, label rules v2), and the real head CT of invesalius-examples"
"${pin[@]}" "$work/quality"
echo
echo "== 2. training on 12 small phantoms"
"$medcad" phantom --out "$work/train" --cases 12 --seed 1 >/dev/null
read -r s m <<<"$(median "${pin[@]}" "$medcad" segment train --data "$work/train" --out "$work/model.toml")"
echo "medcad segment train: median ${s} s over $RUNS runs, peak ${m} MB (target ≤ 60 s)"
echo
echo "== 3. predicting a full-size volume"
"$medcad" phantom --out "$work/full" --cases 1 --seed 9 --size full
ct="$work/full/imagesTr/phantom_000_0000.nii.gz"
read -r s m <<<"$(median "${pin[@]}" "$medcad" segment predict --model "$work/model.toml" --in "$ct" --out "$work/pred.nii.gz")"
echo "medcad segment predict: median ${s} s over $RUNS runs, peak ${m} MB (targets ≤ 10 s, ≤ 2048 MB)"
echo
echo "== 4. threshold baseline vs its anchor (nibabel + scipy.ndimage) on the same volume, 600 HU"
read -r sm mm <<<"$(median "${pin[@]}" "$medcad" segment baseline --threshold 600 --in "$ct" --out "$work/b_medcad.nii.gz")"
if "$PY" -c 'import nibabel, scipy' 2>/dev/null; then
  read -r sp mp <<<"$(median "${pin[@]}" "$PY" bench/segment/baseline.py 600 "$ct" "$work/b_py.nii.gz")"
  same=$("$PY" -c 'import sys, nibabel as n, numpy as np; a=np.asanyarray(n.load(sys.argv[1]).dataobj); b=np.asanyarray(n.load(sys.argv[2]).dataobj); print("identical" if (a==b).all() else "DIFFERENT (%d voxels)" % (a!=b).sum())' "$work/b_medcad.nii.gz" "$work/b_py.nii.gz")
  echo "medcad: median ${sm} s, peak ${mm} MB; python/scipy: median ${sp} s, peak ${mp} MB; masks ${same}"
  awk -v a="$sp" -v b="$sm" 'BEGIN {printf "ratio python/medcad: %.1fx\n", a/b}'
else
  echo "medcad: median ${sm} s, peak ${mm} MB; anchor skipped: $PY cannot import nibabel and scipy"
fi
