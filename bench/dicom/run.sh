#!/usr/bin/env bash
# Side-by-side benchmark of `medcad dicom convert` against dcm2niix on one
# generated CT series (512×512×SLICES, default 300; see gen/main.go):
#   1. dcm2niix -z n   vs  medcad dicom convert --gzip=false   (.nii)
#   2. dcm2niix -z y   vs  medcad dicom convert                (.nii.gz)
# Runs alternate (A B A B …) so that both see the same machine load, the
# voxels of both outputs are compared once, and the script prints each
# run's wall time, the medians and the ratio medcad/dcm2niix.
# Usage: bench/dicom/run.sh [RUNS] [SLICES] [SYNTAX]   (defaults 5, 300, native).
# SYNTAX j2k first compresses every file with GDCM's `gdcmconv --j2k`
# (JPEG 2000 lossless, OpenJPEG inside) and runs only the .nii comparison;
# `run.sh 1 20 j2k` is a quick small-scale run.
# Needs dcm2niix (scripts/test-deps.sh installs it). dcm2niix -z y uses
# pigz when it is on PATH, else its internal single-threaded zlib.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
slices=${2:-300}
syntax=${3:-native}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/medcad" ./cmd/medcad
go run ./bench/dicom/gen -out "$work/series" -slices "$slices"
modes="nii gz"
if [[ $syntax == j2k ]]; then
  mv "$work/series" "$work/native"; mkdir "$work/series"
  (cd "$work/native" && ls | xargs -P "$(nproc)" -I{} gdcmconv --j2k {} "$work/series/{}")
  echo "compressed with gdcmconv --j2k: $(du -sm "$work/series" | cut -f1) MB"
  modes=nii
fi
echo "series: $slices slices of 512x512, $(du -sm "$work/series" | cut -f1) MB; $(nproc) CPUs; pigz: $(command -v pigz || echo none)"
echo "dcm2niix: $(dcm2niix 2>&1 | grep -o "v[0-9][0-9.]*[0-9]" | head -1)"

. bench/dicom/timing.sh

compare() { # A B: medians and ratio B/A
  local ta tb ca cb
  ta=$(median <"$work/$1.times"); tb=$(median <"$work/$2.times")
  ca=$(median <"$work/$1.cpu"); cb=$(median <"$work/$2.cpu")
  printf '  %-14s wall runs: %s\n' "$1" "$(tr '\n' ' ' <"$work/$1.times")"
  printf '  %-14s wall runs: %s\n' "$2" "$(tr '\n' ' ' <"$work/$2.times")"
  printf '  %-14s median wall %.3f s, cpu %.3f s\n' "$1" "$ta" "$ca"
  printf '  %-14s median wall %.3f s, cpu %.3f s\n' "$2" "$tb" "$cb"
  awk -v a="$ta" -v b="$tb" -v c="$ca" -v d="$cb" -v n="$slices" 'BEGIN {printf "  ratio medcad/dcm2niix: wall %.2f, cpu %.2f   (medcad %.2f ms wall per slice)\n", b / a, d / c, 1000 * b / n}'
}

uptime
for mode in $modes; do
  for _ in $(seq "$runs"); do
    if [[ $mode == nii ]]; then
      timed dcm2niix-nii dcm2niix -z n -f out -o "$work/out-dcm2niix-nii" "$work/series"
      timed medcad-nii "$work/medcad" dicom convert --gzip=false --out "$work/out-medcad-nii" "$work/series"
    else
      timed dcm2niix-gz dcm2niix -z y -f out -o "$work/out-dcm2niix-gz" "$work/series"
      timed medcad-gz "$work/medcad" dicom convert --out "$work/out-medcad-gz" "$work/series"
    fi
  done
done

# Same voxels (dcm2niix keeps raw values with scl_inter; nibabel applies it).
if /usr/bin/python3 -c 'import nibabel' 2>/dev/null; then
  /usr/bin/python3 - "$work/out-medcad-nii/series-01.nii" "$work/out-dcm2niix-nii/out.nii" <<'PY'
import sys, nibabel as nib, numpy as np
a, b = (nib.load(p) for p in sys.argv[1:])
same = np.array_equal(a.get_fdata(), b.get_fdata())
print("voxels identical:", same, "; affine max diff %.2g mm" % np.abs(a.affine - b.affine).max())
PY
fi

echo ".nii (dcm2niix -z n vs medcad --gzip=false):"
compare dcm2niix-nii medcad-nii
if [[ $modes == *gz* ]]; then
  echo ".nii.gz (dcm2niix -z y vs medcad):"
  compare dcm2niix-gz medcad-gz
  ls -l "$work/out-dcm2niix-gz"/*.nii.gz "$work/out-medcad-gz"/*.nii.gz | awk '{print "  size", $5, $9}'
fi
uptime
