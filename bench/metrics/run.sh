#!/usr/bin/env bash
# Side-by-side benchmark of medcad's metrics and marching cubes against the
# anchors, on one synthetic CT-sized case (512×512×300, 0.78×0.78×1 mm,
# ~4.8 M bone voxels; see gen/main.go):
#   1. medcad eval (full metric set) vs the numpy/scipy reference
#      implementation (stages/metrics/testdata/reference.py), same masks;
#      values must agree to 1e-9.
#   2. medcad surface vs scikit-image measure.marching_cubes, on the CT at
#      300 HU and on the truth label map at 0.5.
# Prints medians of wall time and of CPU time (user + system; steadier when
# the machine is shared), peak resident memory and the ratios (measured by
# bench/metrics/timeit).
# Usage: bench/metrics/run.sh [RUNS] (default 3). Needs Debian's python3
# with numpy, scipy and scikit-image (scripts/test-deps.sh installs them).
# Prebuilt binaries may be given as BIN=DIR (holding medcad, gen, timeit)
# for a machine without Go; PARTS="eval ct label" picks the comparisons
# (default all three); GENFLAGS="-nx 128 -nz 60 -n 20" makes a small
# case for a quick check of the script.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
py=/usr/bin/python3
# Scratch in memory when possible: the figures are about computing, not disk.
work=$(mktemp -d -p "$( [[ -d /dev/shm ]] && echo /dev/shm || echo /tmp)")
trap 'rm -rf "$work"' EXIT

bin=${BIN:-}
if [[ -z "$bin" ]]; then
  bin=$work
  go build -o "$bin/medcad" ./cmd/medcad
  go build -o "$bin/gen" ./bench/metrics/gen
  go build -o "$bin/timeit" ./bench/metrics/timeit
fi
"$bin/gen" -out "$work" ${GENFLAGS:-} 2>&1
sp="0.78125 0.78125 1"

# timed NAME CMD...: runs CMD, appends "wall peakKB cpu" to $work/NAME.times.
timed() {
  local name=$1; shift
  "$bin/timeit" "$work/$name.times" "$@" >"$work/$name.out"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

report() { # A B: medians and ratios B/A
  local ta tb ca cb ma mb
  ta=$(cut -d' ' -f1 "$work/$1.times" | median); tb=$(cut -d' ' -f1 "$work/$2.times" | median)
  ca=$(cut -d' ' -f3 "$work/$1.times" | median); cb=$(cut -d' ' -f3 "$work/$2.times" | median)
  ma=$(cut -d' ' -f2 "$work/$1.times" | sort -n | tail -1); mb=$(cut -d' ' -f2 "$work/$2.times" | sort -n | tail -1)
  printf '  %-22s wall %7.2f s  cpu %7.2f s  peak %6d MB\n' "$1" "$ta" "$ca" $((ma / 1024))
  printf '  %-22s wall %7.2f s  cpu %7.2f s  peak %6d MB\n' "$2" "$tb" "$cb" $((mb / 1024))
  awk -v a="$ta" -v b="$tb" -v c="$ca" -v d="$cb" 'BEGIN {printf "  speed-up: %.1fx wall, %.1fx cpu\n", b / a, d / c}'
}

parts=" ${PARTS:-eval ct label} "

if [[ $parts == *" eval "* ]]; then
echo "== metrics: medcad eval vs scipy reference ($runs runs each, interleaved)"
for _ in $(seq "$runs"); do
  timed medcad-eval "$bin/medcad" eval --truth "$work/truth.nii" --pred "$work/pred.nii" --tolerance-mm 1 --json
  timed scipy-reference $py stages/metrics/testdata/reference.py bench "$work/truth.u8" "$work/pred.u8" $sp
done
$py bench/metrics/compare.py "$work/medcad-eval.out" "$work/scipy-reference.out"
report medcad-eval scipy-reference
fi

if [[ $parts == *" ct "* ]]; then
echo "== marching cubes, CT at 300 HU: medcad surface vs skimage ($runs runs each)"
for _ in $(seq "$runs"); do
  timed medcad-surface-ct "$bin/medcad" surface --in "$work/ct.nii" --iso 300 --out "$work/ct.stl" --json
  timed skimage-mc-ct $py bench/metrics/skimage_mc.py "$work/ct.i16" 300 $sp
done
echo "  medcad:  $(tr -d '\n ' <"$work/medcad-surface-ct.out")"
echo "  skimage: $(cat "$work/skimage-mc-ct.out")"
report medcad-surface-ct skimage-mc-ct
fi

if [[ $parts == *" label "* ]]; then
echo "== marching cubes, label map at 0.5: medcad surface vs skimage ($runs runs each)"
for _ in $(seq "$runs"); do
  timed medcad-surface-label "$bin/medcad" surface --in "$work/truth.nii" --out "$work/truth.stl" --json
  timed skimage-mc-label $py bench/metrics/skimage_mc.py "$work/truth.u8" 0.5 $sp
done
echo "  medcad:  $(tr -d '\n ' <"$work/medcad-surface-label.out")"
echo "  skimage: $(cat "$work/skimage-mc-label.out")"
report medcad-surface-label skimage-mc-label
fi
