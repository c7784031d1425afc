#!/usr/bin/env bash
# No-op repro on a 5-stage pipeline whose deps hold FILES files (default
# 10,000), and the demo's wall time. Prints the median of RUNS no-op runs.
# Usage: bench/pipeline/run.sh [FILES] [RUNS]
set -euo pipefail
files=${1:-10000}
runs=${2:-7}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/medcad" "$root/cmd/medcad"
m="$work/medcad"

cd "$work"
"$m" init proj >/dev/null
cd proj
mkdir -p raw
# FILES small files in 100 folders.
for d in $(seq 0 99); do
  mkdir -p "raw/d$d"
  for f in $(seq 1 $((files / 100))); do echo "$d-$f" > "raw/d$d/f$f.txt"; done
done
cat > medcad.toml <<'TOML'
[project]
name = "bench"

[[stage]]
name = "s1"
run = "ls -R raw | wc -l > {out}"
deps = ["raw"]
outs = ["build/s1.txt"]

[[stage]]
name = "s2"
run = "cat {s1.out} > {out}"
deps = ["s1", "raw"]
outs = ["build/s2.txt"]

[[stage]]
name = "s3"
run = "cat {s2.out} > {out}"
deps = ["s2"]
params = ["p"]
outs = ["build/s3.txt"]

[[stage]]
name = "s4"
run = "cat {s3.out} > {out}"
deps = ["s3", "raw"]
outs = ["build/s4.txt"]

[[stage]]
name = "s5"
run = "cat {s4.out} {s1.out} > {out}"
deps = ["s4", "s1"]
outs = ["build/s5.txt"]

[params.p]
x = 1
TOML
start=$(date +%s.%N)
"$m" repro 2>/dev/null
first=$(echo "$(date +%s.%N) - $start" | bc)
"$m" repro 2>/dev/null # settles the stat index past the racy window
sleep 2
"$m" repro 2>/dev/null
times=()
for _ in $(seq "$runs"); do
  s=$(date +%s%N)
  "$m" repro 2>/dev/null
  e=$(date +%s%N)
  times+=($(( (e - s) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
median=${sorted[$((runs / 2))]}
echo "pipeline: 5 stages, deps hold $files files"
printf 'first repro (hashes everything): %.2f s\n' "$first"
echo "no-op repro: median ${median} ms over $runs runs (all: ${times[*]})"

cd "$work"
s=$(date +%s%N)
"$m" demo --dir "$work/demo" >/dev/null 2>&1
e=$(date +%s%N)
echo "medcad demo (3 batches x 4 cases, default): $(( (e - s) / 1000000 )) ms"
