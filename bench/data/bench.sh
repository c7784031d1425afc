#!/usr/bin/env bash
# Benchmarks of medcad's data plane, each side by side with its anchor in
# one run, on the same files; prints medians and ratios.
#
#   bench/data/bench.sh [add|add-big|add-incoming|status|transfer|remote-status|all]
#   bench/data/bench.sh add-ab OLD [LINK]   (add --link LINK, default hardlink:
#                                            binary OLD against this tree)
#
# Environment (defaults are the sizes of issue 3):
#   FILES=20000 SIZE_KB=64   files of add and transfer
#   BIG_MB=2048              the single large file of add-big
#   STATUS_FILES=100000      files of status (1 KiB each)
#   RUNS=3                   runs per side; the median is reported
#   BENCH_DIR=/tmp/medcad-bench-data   scratch space (about 6 GB at full size)
#   SETTLE_S=361             wait after deleting scratch files (see removed)
#   KEEPALIVE=0              1 starts versitygw with --keep-alive (its default
#                            closes the connection after every response; AWS
#                            S3 and MinIO keep connections open)
#
# BENCH_DIR picks the file system. On one with reflinks (XFS, btrfs) the
# default add clones files into the cache and checkout clones them out;
# bench/data/README.md says how to mount a scratch XFS for that.
#
# Anchors: `openssl dgst -sha256` (SHA instructions, one core) over the same
# files through xargs; `rclone copy --transfers 32` (Debian's rclone, S3
# backend, AWS_CA_BUNDLE unset) against the same versitygw on loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$(go env GOPATH)/bin:$PATH"

FILES=${FILES:-20000}
SIZE_KB=${SIZE_KB:-64}
BIG_MB=${BIG_MB:-2048}
STATUS_FILES=${STATUS_FILES:-100000}
RUNS=${RUNS:-3}
B=${BENCH_DIR:-/tmp/medcad-bench-data}
mkdir -p "$B"
go build -o "$B/medcad" ./cmd/medcad
M="$B/medcad"

now() { date +%s.%N; }
# removed DIR…: deletes folders, then waits out ext4's "recently deleted"
# window. On ext4 without a journal (this machine's), the inode allocator
# skips inodes freed in the last 60 s, or 360 s when their inode-table block
# is dirty, which every new inode in that block makes it: each allocation
# looks up every such inode it passes, so creating files within six minutes
# of deleting tens of thousands costs several times more (perf: most of the
# time in recently_deleted and find_get_block_common under openat), and
# would time the clean-up rather than the tool. Timed runs never delete.
removed() { chmod -R u+w "$@" 2>/dev/null || true; rm -rf "$@"; sync; sleep "${SETTLE_S:-361}"; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# time_cmd CMD…: seconds taken (stdout and stderr discarded). Dirty pages of
# the previous command are written out first: medcad's syncfs would otherwise
# pay for what the other side left unwritten.
time_cmd() { local s e; sync; s=$(now); "$@" >/dev/null 2>&1; e=$(now); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", e-s}'; }
# time_sync: seconds a sync takes (what the previous command left unwritten).
time_sync() { local s e; s=$(now); sync; e=$(now); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", e-s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

# gen_files DIR N BYTES: N files of random bytes, 100 per folder.
gen_files() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(d, "case-%04d" % (i // 100))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "%06d.dcm" % i), "wb") as f:
        f.write(os.urandom(size))
PY
}

# fresh_add P ASIDE: project P without its cache (moved into ASIDE, removed
# after all runs: see removed) and pointer, ready for another data add.
fresh_add() {
  chmod -R u+w "$1/data/ds"
  if [[ -d "$1/.medcad" ]]; then mv "$1/.medcad" "$2/$RANDOM$RANDOM"; fi
  rm -f "$1/data/ds.dataset.toml"
}

# project DIR: a fresh medcad project.
project() { rm -rf "$1"; "$M" init "$1" >/dev/null; }

bench_add() { # NAME FILES BYTES
  local name=$1 n=$2 size=$3 p="$B/add-$1"
  if [[ ! -f "$B/$name.ready" ]]; then
    project "$p"
    gen_files "$p/data/ds" "$n" "$size"
    touch "$B/$name.ready"
  fi
  local bytes; bytes=$(du -sb "$p/data/ds" | cut -f1)
  cat "$p"/data/ds/*/* >/dev/null # both sides read from the page cache
  # Each medcad run starts with an empty cache. The previous one is moved
  # aside and removed after all runs (see removed).
  local old="$B/old-caches"
  [[ -d "$old" ]] && removed "$old"
  mkdir -p "$old"
  local ts=() tm=() th=()
  for _ in $(seq "$RUNS"); do
    ts+=("$(time_cmd sh -c "cd '$p/data/ds' && find . -type f -print0 | xargs -0 -n 4000 openssl dgst -sha256")")
    fresh_add "$p" "$old"
    tm+=("$(time_cmd "$M" -C "$p" data add data/ds --name ds)")
    fresh_add "$p" "$old"
    th+=("$(time_cmd "$M" -C "$p" data add data/ds --name ds --link hardlink)")
  done
  fresh_add "$p" "$old"
  removed "$old"
  local so mo ho; so=$(median "${ts[@]}"); mo=$(median "${tm[@]}"); ho=$(median "${th[@]}")
  mbs() { awk -v b="$bytes" -v t="$1" 'BEGIN {printf "%.0f", b/t/1e6}'; }
  echo "add $name: $n files, $bytes bytes (load average $(cut -d' ' -f1 /proc/loadavg))"
  echo "  openssl dgst -sha256:                median ${so}s  $(mbs "$so") MB/s   (runs: ${ts[*]})"
  echo "  medcad data add (copy or clone):     median ${mo}s  $(mbs "$mo") MB/s   (runs: ${tm[*]})"
  echo "  medcad data add --link hardlink:     median ${ho}s  $(mbs "$ho") MB/s   (runs: ${th[*]})"
  echo "  ratio medcad/openssl throughput: $(ratio "$so" "$mo")x (copy), $(ratio "$so" "$ho")x (hardlink)"
}

bench_add_ab() { # OLD [LINK]: `data add --link LINK` (default hardlink) by the binary OLD and by this tree, alternating
  local old=$1 link=${2:-hardlink} p="$B/add-small" ta=() tb=()
  [[ -x "$old" ]] || { echo "add-ab: $old is not an executable medcad" >&2; exit 2; }
  [[ -f "$B/small.ready" ]] || { project "$p"; gen_files "$p/data/ds" "$FILES" $((SIZE_KB * 1024)); touch "$B/small.ready"; }
  cat "$p"/data/ds/*/* >/dev/null
  local aside="$B/old-caches"
  [[ -d "$aside" ]] && removed "$aside"
  mkdir -p "$aside"
  for _ in $(seq "$RUNS"); do
    fresh_add "$p" "$aside"; ta+=("$(time_cmd "$old" -C "$p" data add data/ds --name ds --link "$link")")
    fresh_add "$p" "$aside"; tb+=("$(time_cmd "$M" -C "$p" data add data/ds --name ds --link "$link")")
  done
  fresh_add "$p" "$aside"
  removed "$aside"
  echo "add --link $link, $FILES files: $old median $(median "${ta[@]}")s (runs: ${ta[*]}); this tree median $(median "${tb[@]}")s (runs: ${tb[*]})"
}

bench_add_incoming() { # data add --link hardlink from a delivery folder outside data/ against the same add in place
  local pi="$B/inc-inplace" po="$B/inc-outside" in="$B/incoming" n=${INCOMING_FILES:-10000}
  if [[ ! -f "$B/incoming.ready" ]]; then
    project "$pi"; project "$po"; rm -rf "$in"
    gen_files "$pi/data/ds" "$n" $((SIZE_KB * 1024))
    gen_files "$in" "$n" $((SIZE_KB * 1024))
    touch "$B/incoming.ready"
  fi
  cat "$pi"/data/ds/*/* "$in"/*/* >/dev/null
  local aside="$B/old-caches"
  [[ -d "$aside" ]] && removed "$aside"
  mkdir -p "$aside"
  local ti=() to=()
  for _ in $(seq "$RUNS"); do
    fresh_add "$pi" "$aside"
    ti+=("$(time_cmd "$M" -C "$pi" data add data/ds --name ds --link hardlink)")
    chmod -R u+w "$po/data" 2>/dev/null || true
    [[ -d "$po/data/ds" ]] && mv "$po/data/ds" "$aside/$RANDOM$RANDOM"
    fresh_add_cache "$po" "$aside"
    to+=("$(time_cmd "$M" -C "$po" data add "$in" --name ds --link hardlink)")
  done
  local mi mo; mi=$(median "${ti[@]}"); mo=$(median "${to[@]}")
  echo "add --link hardlink, $n files of ${SIZE_KB} KiB (load average $(cut -d' ' -f1 /proc/loadavg))"
  echo "  in place (data/ds):          median ${mi}s   (runs: ${ti[*]})"
  echo "  from a folder outside data/: median ${mo}s   (runs: ${to[*]})"
  echo "  ratio outside/in place: $(ratio "$mo" "$mi")x (goal <= 1.2x)"
}

# fresh_add_cache P ASIDE: project P without its cache and pointer.
fresh_add_cache() {
  if [[ -d "$1/.medcad" ]]; then mv "$1/.medcad" "$2/$RANDOM$RANDOM"; fi
  rm -f "$1/data/ds.dataset.toml"
}

bench_status() {
  local p="$B/status"
  if [[ ! -f "$B/status.ready" ]]; then
    project "$p"
    gen_files "$p/data/st" "$STATUS_FILES" 1024
    sleep 1
    "$M" -C "$p" data add data/st --name st >/dev/null
    touch "$B/status.ready"
  fi
  "$M" -C "$p" data status >/dev/null # settles racy index entries once
  local tm=()
  for _ in $(seq "$RUNS"); do tm+=("$(time_cmd "$M" -C "$p" data status)"); done
  echo "status: $STATUS_FILES files, nothing changed"
  echo "  medcad data status: median $(median "${tm[@]}")s (goal <= 0.5 s)   (runs: ${tm[*]})"
  echo "  one more run: $( { /usr/bin/time -f '%e s wall, %U s user + %S s sys CPU' "$M" -C "$p" data status >/dev/null; } 2>&1 )   (load average: $(cut -d' ' -f1 /proc/loadavg))"
  echo "  re-hashed: $("$M" -C "$p" --json data status | grep -o '"rehashed": [0-9]*')"
  touch -d '1 minute ago' "$p/data/st/case-0000/000000.dcm"
  echo "  one file touched, re-hashed: $("$M" -C "$p" --json data status | grep -o '"rehashed": [0-9]*')"
  echo "  next status, re-hashed: $("$M" -C "$p" --json data status | grep -o '"rehashed": [0-9]*')"
}

start_versitygw() {
  local port
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$B/vgw"
  local keep=()
  [[ "${KEEPALIVE:-0}" == 1 ]] && keep=(--keep-alive)
  ROOT_ACCESS_KEY=k ROOT_SECRET_KEY=s versitygw -q "${keep[@]}" --access-log "$B/access.log" --port "127.0.0.1:$port" posix "$B/vgw" >"$B/versitygw.out" 2>&1 &
  VGW_PID=$!
  trap 'kill $VGW_PID 2>/dev/null || true' EXIT
  ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.05; done
  echo "versitygw did not start" >&2; exit 1
}

rclone_() { # rclone with an S3 remote "vgw:" on versitygw, AWS_CA_BUNDLE unset
  env -u AWS_CA_BUNDLE RCLONE_CONFIG_VGW_TYPE=s3 RCLONE_CONFIG_VGW_PROVIDER=Other \
    RCLONE_CONFIG_VGW_ACCESS_KEY_ID=k RCLONE_CONFIG_VGW_SECRET_ACCESS_KEY=s \
    RCLONE_CONFIG_VGW_ENDPOINT="$ENDPOINT" RCLONE_CONFIG_VGW_REGION=us-east-1 \
    RCLONE_CONFIG_VGW_FORCE_PATH_STYLE=true rclone "$@"
}

bench_transfer() {
  # Downloads go to folders never used before, removed with the server's
  # files only after all runs (see removed).
  local down="$B/down"
  if [[ -d "$down" || -d "$B/vgw" ]]; then removed "$down" "$B/vgw"; fi
  mkdir -p "$down"
  start_versitygw
  export AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s AWS_EC2_METADATA_DISABLED=true
  local src="$B/xfer-src"
  if [[ ! -f "$B/xfer.ready" ]]; then
    project "$src"
    gen_files "$src/data/ds" "$FILES" $((SIZE_KB * 1024))
    touch "$B/xfer.ready"
  fi
  [[ -f "$src/data/ds.dataset.toml" ]] || "$M" -C "$src" data add data/ds --name ds >/dev/null
  local rp=() rl=() rs=() mp=() ml=() mh=() mn=()
  for i in $(seq "$RUNS"); do
    # rclone: up into a fresh bucket, then down into a fresh folder.
    rclone_ mkdir "vgw:rc$i"
    rp+=("$(time_cmd rclone_ copy --transfers 32 "$src/data/ds" "vgw:rc$i/ds")")
    rl+=("$(time_cmd rclone_ copy --transfers 32 "vgw:rc$i/ds" "$down/rc$i")")
    # What rclone leaves in the page cache, written out: medcad's pull
    # ends with its files on disk.
    rs+=("$(awk -v a="${rl[-1]}" -v b="$(time_sync)" 'BEGIN {printf "%.3f", a+b}')")
    # medcad: push into a fresh bucket, pull into a fresh clone.
    rclone_ mkdir "vgw:mc$i"
    sed -i '/^url = \|^endpoint = \|^path_style = /d' "$src/medcad.toml"
    sed -i "s|^\[remote\]|[remote]\nurl = \"s3://mc$i/store\"\nendpoint = \"$ENDPOINT\"\npath_style = true|" "$src/medcad.toml"
    mp+=("$(time_cmd "$M" -C "$src" data push --jobs 32)")
    for mode in full hardlink nocheckout; do
      local dst="$down/mc$i-$mode"
      mkdir -p "$dst/data"
      cp "$src/medcad.toml" "$dst/" && cp "$src/data/ds.dataset.toml" "$dst/data/"
      case $mode in
        full) ml+=("$(time_cmd "$M" -C "$dst" data pull --jobs 32)") ;;
        hardlink) mh+=("$(time_cmd "$M" -C "$dst" data pull --jobs 32 --link hardlink)") ;;
        nocheckout) mn+=("$(time_cmd "$M" -C "$dst" data pull --jobs 32 --no-checkout)") ;;
      esac
    done
    cmp <(cd "$src/data/ds" && find . -type f | sort | xargs cat | sha256sum) <(cd "$down/rc$i" && find . -type f | sort | xargs cat | sha256sum)
    for mode in full hardlink; do
      cmp <(cd "$src/data/ds" && find . -type f | sort | xargs cat | sha256sum) <(cd "$down/mc$i-$mode/data/ds" && find . -type f | sort | xargs cat | sha256sum)
    done
  done
  local a b c d e f g
  a=$(median "${rp[@]}"); b=$(median "${mp[@]}"); c=$(median "${rl[@]}"); d=$(median "${ml[@]}"); e=$(median "${mn[@]}"); f=$(median "${rs[@]}"); g=$(median "${mh[@]}")
  ops() { awk -v n="$FILES" -v t="$1" 'BEGIN {printf "%.0f", n/t}'; }
  echo "transfer: $FILES files x $SIZE_KB KiB, versitygw on loopback$([[ "${KEEPALIVE:-0}" == 1 ]] && echo ' with --keep-alive' || echo ' (its default: a new connection per request)')"
  echo "  up:   rclone copy --transfers 32: median ${a}s $(ops "$a") objects/s   (runs: ${rp[*]})"
  echo "        medcad data push --jobs 32:  median ${b}s $(ops "$b") objects/s   (runs: ${mp[*]})"
  echo "        ratio medcad/rclone objects/s: $(ratio "$a" "$b")x"
  echo "  down: rclone copy --transfers 32: median ${c}s $(ops "$c") objects/s   (runs: ${rl[*]})"
  echo "        medcad data pull (fetch + checkout): median ${d}s $(ops "$d") objects/s   (runs: ${ml[*]})"
  echo "        medcad data pull --link hardlink:    median ${g}s $(ops "$g") objects/s   (runs: ${mh[*]})"
  echo "        medcad data pull --no-checkout:      median ${e}s $(ops "$e") objects/s   (runs: ${mn[*]})"
  echo "        ratio medcad/rclone objects/s: $(ratio "$c" "$d")x (with checkout), $(ratio "$c" "$g")x (hard links), $(ratio "$c" "$e")x (fetch only)"
  echo "        rclone copy, then sync (its files on disk, as medcad's are): median ${f}s $(ops "$f") objects/s   (runs: ${rs[*]})"
  echo "        ratio medcad pull (with checkout) / rclone with sync: $(ratio "$f" "$d")x"
  # status --remote costs one request, whatever the size.
  local before after
  before=$(wc -l <"$B/access.log")
  "$M" -C "$src" data status --remote >/dev/null
  after=$(wc -l <"$B/access.log")
  echo "  medcad data status --remote on the pushed $FILES-file dataset: $((after - before)) request(s) to the remote"
  kill "$VGW_PID"
  removed "$down" "$B/vgw"
}

bench_remote_status() { # the pushed STATUS_FILES dataset: requests of status --remote
  [[ -d "$B/vgw" ]] && removed "$B/vgw"
  start_versitygw
  export AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=s AWS_EC2_METADATA_DISABLED=true
  local p="$B/status"
  [[ -f "$B/status.ready" ]] || bench_status >/dev/null
  rclone_ mkdir vgw:stat
  sed -i '/^url = \|^endpoint = \|^path_style = /d' "$p/medcad.toml"
  sed -i "s|^\[remote\]|[remote]\nurl = \"s3://stat/store\"\nendpoint = \"$ENDPOINT\"\npath_style = true|" "$p/medcad.toml"
  local t; t=$(time_cmd "$M" -C "$p" data push)
  local before after
  before=$(wc -l <"$B/access.log")
  "$M" -C "$p" data status --remote | head -1
  after=$(wc -l <"$B/access.log")
  echo "status --remote: $STATUS_FILES-file dataset pushed in ${t}s; status --remote made $((after - before)) request(s) to the remote"
}

case "${1:-all}" in
  add) bench_add small "$FILES" $((SIZE_KB * 1024)) ;;
  add-big) bench_add big 1 $((BIG_MB * 1024 * 1024)) ;;
  add-incoming) bench_add_incoming ;;
  add-ab) bench_add_ab "${2:?usage: $0 add-ab OLD_MEDCAD_BINARY [LINK]}" "${3:-hardlink}" ;;
  status) bench_status ;;
  transfer) bench_transfer ;;
  remote-status) bench_remote_status ;;
  all)
    bench_add small "$FILES" $((SIZE_KB * 1024))
    bench_add big 1 $((BIG_MB * 1024 * 1024))
    bench_status
    bench_transfer
    bench_remote_status
    ;;
  *) echo "usage: $0 [add|add-big|status|transfer|remote-status|all] | add-ab OLD [LINK]" >&2; exit 2 ;;
esac
