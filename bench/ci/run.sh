#!/usr/bin/env bash
# A pull request that adds one batch, in a fresh clone: medcad's lazy
# repro (what 'ci pr' runs: fetch only what the stages that run read)
# against a full reproduction the DVC + CML way ('dvc pull' of every
# dataset and every output in the lock, then re-run every stage), emulated
# with medcad itself: 'data pull' of everything, a plain 'repro' (restores
# every stage's outs from the run cache, as 'dvc pull' fetches them), then
# 'repro --force'. Prints bytes fetched, peak disk and wall time (medians of
# RUNS runs) and the ratios the goals are stated in, against the full pull
# with and without the outputs. Both sides must end with the same
# medcad.lock (the same model).
#
# Usage: bench/ci/run.sh [quick]
#   CASES=120 BATCHES=10 NEW=12 RUNS=3   the project (CASES in BATCHES batches) and the PR's batch
#   quick: CASES=20 BATCHES=4 NEW=4 RUNS=1
#   BENCH_DIR=/tmp/medcad-bench-ci
#
# The PR job here is 'medcad repro --lazy --json' without --push (a pushed
# run cache would make the next run a cache hit); 'ci pr' runs the same
# lazy repro, plus the report against the base model. Needs versitygw
# (scripts/test-deps.sh installs it), git and Debian's python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$(go env GOPATH)/bin:$PATH"
if [[ "${1:-}" == quick ]]; then
  CASES=${CASES:-20} BATCHES=${BATCHES:-4} NEW=${NEW:-4} RUNS=${RUNS:-1}
fi
CASES=${CASES:-120}
BATCHES=${BATCHES:-10}
NEW=${NEW:-12}
RUNS=${RUNS:-3}
B=${BENCH_DIR:-/tmp/medcad-bench-ci}
rm -rf "$B"
mkdir -p "$B"
go build -o "$B/medcad" ./cmd/medcad
M="$B/medcad"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$B/vgw/bench"
ROOT_ACCESS_KEY=k ROOT_SECRET_KEY=s versitygw -q --port "127.0.0.1:$port" posix "$B/vgw" >"$B/versitygw.out" 2>&1 &
VGW_PID=$!
trap 'kill $VGW_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
export AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

# The data manager: the project on main, CASES cases in BATCHES batches,
# pushed, and main's pipeline run and pushed (what CI did on each merge).
git init -q --bare "$B/origin.git"
"$M" init "$B/dm" >/dev/null
cd "$B/dm"
sed -i "s|^\[remote\]|[remote]\nurl = \"s3://bench/store\"\nendpoint = \"http://127.0.0.1:$port\"\npath_style = true|; s|^epochs = 6|epochs = 2|" medcad.toml
per=$((CASES / BATCHES))
for i in $(seq "$BATCHES"); do
  "$M" phantom --out "$B/in/b$i" --cases "$per" --seed "$((100 + i))" --format dicom >/dev/null
  "$M" data add "$B/in/b$i" --name "b$i" >/dev/null
done
"$M" data push >/dev/null
echo "setup: main's pipeline on $CASES cases ($BATCHES batches of $per)" >&2
"$M" repro --push 2>/dev/null
git add -A && git commit -qm main && git push -q "$B/origin.git" HEAD:main
# The pull request: one batch of NEW cases.
git checkout -qb pr
"$M" phantom --out "$B/in/new" --cases "$NEW" --seed 999 --format dicom >/dev/null
"$M" data add "$B/in/new" --name new >/dev/null
"$M" data push >/dev/null
git add -A && git commit -qm "data: new" && git push -q "$B/origin.git" pr
new_ids=$(grep -o 'id = "c-[0-9a-f]*"' data/new.dataset.toml | cut -d'"' -f2 | tr '\n' ' ')

du_b() { # bytes of the files under $1, .git aside
  python3 - "$1" <<'PY'
import os, sys
n = 0
for d, dirs, files in os.walk(sys.argv[1]):
    dirs[:] = [x for x in dirs if x != ".git"]
    for f in files:
        p = os.path.join(d, f)
        if os.path.isfile(p) and not os.path.islink(p):
            n += os.path.getsize(p)
print(n)
PY
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The new batch's closure: what a pull of it alone fetches.
git clone -q -b pr "$B/origin.git" "$B/one"
newb=$("$M" -C "$B/one" --json data pull new --no-checkout | json 'd["bytes"]')
rm -rf "$B/one"

lf=() lp=() lw=() ff=() fd=() fp=() fw=() rd=()
for r in $(seq "$RUNS"); do
  # medcad: the PR job's lazy repro in a fresh clone.
  git clone -q -b pr "$B/origin.git" "$B/lazy"
  s=$(now)
  "$M" -C "$B/lazy" --json repro --lazy >"$B/lazy.json" 2>"$B/lazy.err"
  lw+=("$(echo "$(now) - $s" | bc)")
  lf+=("$(json 'd["bytes_fetched"]' <"$B/lazy.json")")
  lp+=("$(json 'd["peak_disk"]' <"$B/lazy.json")")
  # What running stages read of outs made on main: the ingest outs of
  # the earlier cases (build/cases, less the new batch's files).
  rd+=("$(python3 - "$B/lazy/build/cases" $new_ids <<'PY'
import os, sys
new = sys.argv[2:]
n = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if not any(f.startswith(i) for i in new):
            n += os.path.getsize(os.path.join(d, f))
print(n)
PY
)")
  cp "$B/lazy/medcad.lock" "$B/lazy.lock"
  lazylock=$(sha256sum <"$B/lazy.lock")
  rm -rf "$B/lazy"
  # The anchor: pull everything, re-run every stage.
  git clone -q -b pr "$B/origin.git" "$B/full"
  base=$(du_b "$B/full")
  s=$(now)
  pulled=$("$M" -C "$B/full" --json data pull | json 'd["bytes"]')
  afterpull=$(du_b "$B/full")
  "$M" -C "$B/full" --json repro >"$B/outs.json" 2>"$B/outs.err"
  afterouts=$(du_b "$B/full")
  "$M" -C "$B/full" --json repro --force >"$B/full.json" 2>"$B/full.err"
  fw+=("$(echo "$(now) - $s" | bc)")
  fd+=("$pulled")
  ff+=("$((pulled + $(json 'd["bytes_fetched"]' <"$B/outs.json") + $(json 'd["bytes_fetched"]' <"$B/full.json")))")
  fp+=("$((afterouts - base + $(json 'd["peak_disk"]' <"$B/full.json")))")
  if [[ "$(sha256sum <"$B/full/medcad.lock")" != "$lazylock" ]]; then
    echo "run $r: the lazy and the full run disagree on medcad.lock" >&2
    diff "$B/lazy.lock" "$B/full/medcad.lock" >&2 || true
    exit 1
  fi
  rm -rf "$B/full"
done

LF=$(median "${lf[@]}") LP=$(median "${lp[@]}") LW=$(median "${lw[@]}")
FF=$(median "${ff[@]}") FD=$(median "${fd[@]}") FP=$(median "${fp[@]}") FW=$(median "${fw[@]}") RD=$(median "${rd[@]}")
echo "project: $CASES cases in $BATCHES batches; the PR adds $NEW cases; medians of $RUNS runs"
echo "new batch: $newb bytes; outs of earlier cases that running stages read: $RD bytes"
printf '%-34s %14s %14s %10s\n' "" "bytes fetched" "peak disk" "wall s"
printf '%-34s %14s %14s %10.1f\n' "medcad repro --lazy (ci pr)" "$LF" "$LP" "$LW"
printf '%-34s %14s %14s %10.1f\n' "pull all + repro --force (DVC+CML)" "$FF" "$FP" "$FW"
echo "  of which the datasets: $FD bytes; medcad.lock identical on both sides"
awk -v lf="$LF" -v nb="$newb" -v rd="$RD" -v ff="$FF" -v fd="$FD" -v lp="$LP" -v fp="$FP" -v lw="$LW" -v fw="$FW" 'BEGIN {
  printf "fetched / (new batch + outs read): %.2f (goal <= 1.5)\n", lf / (nb + rd)
  printf "fetched / full pull (data + outs): %.2f (goal <= 0.20)\n", lf / ff
  printf "fetched / full pull (data only):   %.2f\n", lf / fd
  printf "peak disk / full:                  %.2f\n", lp / fp
  printf "wall / full:                       %.2f (goal <= 0.4)\n", lw / fw
}'
