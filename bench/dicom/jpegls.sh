#!/usr/bin/env bash
# Side-by-side benchmark of medcad's JPEG-LS decoder against dcmtk's
# dcmdjpls (CharLS inside) on one generated CT series (512×512×SLICES,
# default 300; see gen/main.go), every file compressed losslessly with
# `dcmcjpls` (it refuses near-lossless for signed data, as CT is):
#   dcmdjpls         one process per file, as dcmtk decompresses a series
#   dcmconv          the same loop without decoding (dcmtk's read + write of
#                    the uncompressed files): the per-process overhead
#   medcad           medcad dicom convert --gzip=false (one file per core)
#   medcad-1cpu      the same with GOMAXPROCS=1
# Runs alternate so that all see the same machine load; the script prints
# each run's wall time, the medians of wall and CPU time per slice and the
# ratios medcad/dcmdjpls, and checks that medcad's .nii holds the same
# voxels as dcm2niix's conversion of dcmdjpls's output.
# Usage: bench/dicom/jpegls.sh [RUNS] [SLICES]   (defaults 5, 300).
# `jpegls.sh 1 20` is a quick small-scale run. Needs dcmtk and dcm2niix
# (scripts/test-deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
slices=${2:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/medcad" ./cmd/medcad
go run ./bench/dicom/gen -out "$work/native" -slices "$slices"
mkdir "$work/series" "$work/plain"
(cd "$work/native" && ls | xargs -P "$(nproc)" -I{} dcmcjpls --encode-lossless {} "$work/series/{}")
(cd "$work/series" && ls | xargs -P "$(nproc)" -I{} dcmdjpls {} "$work/plain/{}")
echo "series: $slices slices of 512x512, JPEG-LS lossless: $(du -sm "$work/series" | cut -f1) MB (native $(du -sm "$work/native" | cut -f1) MB); $(nproc) CPUs"
echo "dcmtk: $(dcmdjpls --version 2>&1 | grep -o 'v[0-9][0-9.]*' | head -1)"

. bench/dicom/timing.sh
# loop TOOL DIR: TOOL IN OUT on every file of DIR, one after the other.
loop() { for f in "$2"/*; do "$1" "$f" "$work/out-$1/${f##*/}"; done; }
export -f loop
export work

uptime
for _ in $(seq "$runs"); do
  timed dcmdjpls bash -c 'loop dcmdjpls "$0"' "$work/series"
  timed dcmconv bash -c 'loop dcmconv "$0"' "$work/plain"
  timed medcad "$work/medcad" dicom convert --gzip=false --out "$work/out-medcad" "$work/series"
  timed medcad-1cpu env GOMAXPROCS=1 "$work/medcad" dicom convert --gzip=false --out "$work/out-medcad-1cpu" "$work/series"
done
cp "$work/out-medcad/series-01.nii" "$work/medcad.nii"
mkdir "$work/ref"
dcm2niix -z n -f ref -o "$work/ref" "$work/plain" >/dev/null

if /usr/bin/python3 -c 'import nibabel' 2>/dev/null; then
  /usr/bin/python3 - "$work/medcad.nii" "$work/ref/ref.nii" <<'PY'
import sys, nibabel as nib, numpy as np
a, b = (nib.load(p) for p in sys.argv[1:])
same = np.array_equal(a.get_fdata(), b.get_fdata())
print("voxels identical to dcmdjpls + dcm2niix:", same, "; affine max diff %.2g mm" % np.abs(a.affine - b.affine).max())
PY
fi

for n in dcmdjpls dcmconv medcad medcad-1cpu; do
  printf '  %-12s wall runs: %s\n' "$n" "$(tr '\n' ' ' <"$work/$n.times")"
done
for n in dcmdjpls dcmconv medcad medcad-1cpu; do
  w=$(median <"$work/$n.times"); c=$(median <"$work/$n.cpu")
  echo "$n $w $c"
done | awk -v n="$slices" '
  { w[$1] = $2; c[$1] = $3
    printf "  %-12s median wall %.3f s, cpu %.3f s: %.2f ms wall, %.2f ms cpu per slice\n", $1, $2, $3, 1000*$2/n, 1000*$3/n }
  END {
    printf "  ratio medcad/dcmdjpls:      wall %.2f, cpu %.2f\n", w["medcad"]/w["dcmdjpls"], c["medcad"]/c["dcmdjpls"]
    printf "  ratio medcad-1cpu/dcmdjpls: wall %.2f, cpu %.2f\n", w["medcad-1cpu"]/w["dcmdjpls"], c["medcad-1cpu"]/c["dcmdjpls"]
    dw = w["dcmdjpls"] - w["dcmconv"]; dc = c["dcmdjpls"] - c["dcmconv"]
    if (dw > 0 && dc > 0)
      printf "  decode only (dcmdjpls - dcmconv): %.2f ms cpu per slice; medcad-1cpu cpu / that: %.2f\n", 1000*dc/n, c["medcad-1cpu"]/dc
  }'
uptime
