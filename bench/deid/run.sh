#!/usr/bin/env bash
# De-identification speed, side by side in one run: medcad dicom deid
# against dcmtk's dcmodify doing a subset of the work (erase private
# attributes, blank the patient module, new SOP instance UIDs) on the same
# generated CT series. Prints the median wall time of each and the ratio.
#
# usage: bench/deid/run.sh [SLICES] [SIZE] [RUNS]   (default 300 512 5)
set -euo pipefail
n=${1:-300}
size=${2:-512}
runs=${3:-5}
cd "$(dirname "$0")/../.."
command -v dcmodify >/dev/null || { echo "dcmodify (dcmtk) not found" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/medcad" ./cmd/medcad
go run ./bench/deid/gen -n "$n" -size "$size" -out "$tmp/in"
mb=$(du -sm "$tmp/in" | cut -f1)

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m/1e9}'; }

: >"$tmp/medcad.t"
: >"$tmp/dcmodify.t"
for r in $(seq "$runs"); do
	rm -rf "$tmp/out"
	t0=$(now)
	"$tmp/medcad" dicom deid "$tmp/in" --out "$tmp/out" --key-file "$tmp/key" >/dev/null 2>&1
	t1=$(now)
	echo $((t1 - t0)) >>"$tmp/medcad.t"

	rm -rf "$tmp/mod" && cp -r "$tmp/in" "$tmp/mod"
	t0=$(now)
	dcmodify -q -nb -ie -imt -ep -gin \
		-ma "(0010,0010)=" -ma "(0010,0020)=" -ma "(0010,0030)=" -ma "(0008,0050)=" -ma "(0008,0090)=" \
		-ea "(0008,0080)" -ea "(0008,1030)" "$tmp"/mod/*.dcm
	t1=$(now)
	echo $((t1 - t0)) >>"$tmp/dcmodify.t"
done
m=$(median <"$tmp/medcad.t")
d=$(median <"$tmp/dcmodify.t")
echo "series: $n slices of ${size}x${size}, ${mb} MB; $runs runs; $(nproc) CPUs"
echo "medcad dicom deid (full Basic Profile): median ${m} s"
echo "dcmodify (subset of the profile):       median ${d} s"
awk -v m="$m" -v d="$d" 'BEGIN {printf "ratio medcad/dcmodify: %.2f\n", m/d}'
