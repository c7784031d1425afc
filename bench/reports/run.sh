#!/usr/bin/env bash
# Comparison statistics, side by side in one run: `medcad metrics diff`
# (two model manifests read with go-git, their per-case evaluations read
# from the store, then per metric: each model's summary with a 10,000-
# resample bootstrap CI, the paired Δ with its bootstrap CI, and the
# Wilcoxon signed-rank test) against the same statistics in numpy/scipy
# (Debian's python3) reading the two eval.json files directly. Prints the
# median wall time of each and the ratio.
#
# usage: bench/reports/run.sh [CASES] [RUNS]   (default 2000 5)
set -euo pipefail
n=${1:-2000}
runs=${2:-5}
cd "$(dirname "$0")/../.."
/usr/bin/python3 -c 'import scipy' 2>/dev/null || { echo "Debian python3-scipy not found" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/bin/medcad" ./cmd/medcad
export PATH="$tmp/bin:$PATH" GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.org GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.org

p="$tmp/proj"
medcad init "$p" >/dev/null
cd "$p"
cat >medcad.toml <<TOML
[project]
name = "bench"
[[stage]]
name = "train"
run = "sh train.sh"
deps = ["train.sh"]
params = ["train"]
outs = ["build/model"]
[[stage]]
name = "evaluate"
run = "sh eval.sh"
deps = ["train", "eval.sh"]
outs = ["build/eval"]
[params.train]
quality = 90
TOML
cat >train.sh <<'SH'
grep -o '"quality"[^0-9]*[0-9]*' "$MEDCAD_PARAMS" | grep -o '[0-9]*$' > "$MEDCAD_OUT/model.txt"
SH
cat >eval.sh <<SH
read q < "\$MEDCAD_INPUT_TRAIN/model.txt"
awk -v q="\$q" -v n=$n 'BEGIN {
  srand(q); printf "{\"tolerances_mm\": [1], \"cases\": ["
  for (i = 1; i <= n; i++) {
    d = 0.80 + q / 1000 + rand() / 20
    printf "%s{\"case\": \"c-%06d\", \"dice\": %.5f, \"iou\": %.5f, \"hd_mm\": %.3f, \"hd95_mm\": %.3f, \"assd_mm\": %.4f, \"masd_mm\": %.4f, \"nsd\": {\"1\": %.5f}, \"truth_voxels\": 1, \"pred_voxels\": 1, \"flags\": []}", (i > 1 ? "," : ""), i, d, d / (2 - d), 12 - 10 * d + rand(), 8 - 6 * d + rand(), 1 - d, 1 - d + rand() / 100, d
  }
  printf "], \"aggregate\": []}\n"
}' > "\$MEDCAD_OUT/eval.json"
SH
git add -A && git commit -qm pipeline
medcad repro >/dev/null 2>&1
cp build/eval/eval.json "$tmp/base.json"
git add -A && git commit -qm v1
sed -i 's/quality = 90/quality = 88/' medcad.toml
medcad repro >/dev/null 2>&1
cp build/eval/eval.json "$tmp/cand.json"

cat >"$tmp/stats.py" <<'PY'
import json, sys
import numpy as np
from scipy import stats
names = ["dice", "iou", "hd_mm", "hd95_mm", "assd_mm", "masd_mm", "nsd@1"]
def load(f):
    cases = json.load(open(f))["cases"]
    out = {}
    for c in cases:
        v = {k: c[k] for k in names[:6]}
        v["nsd@1"] = c["nsd"]["1"]
        out[c["case"]] = v
    return out
b, k = load(sys.argv[1]), load(sys.argv[2])
common = sorted(set(b) & set(k))
rng = np.random.default_rng(0x6d65646361642d35)
def summary(x):
    x = np.asarray(x)
    idx = rng.integers(0, len(x), size=(10000, len(x)))
    means = x[idx].mean(axis=1)
    return dict(mean=x.mean(), median=np.median(x), std=x.std(ddof=1), min=x.min(), max=x.max(),
                lo=np.percentile(means, 2.5), hi=np.percentile(means, 97.5))
res = {}
for m in names:
    bs = summary([b[c][m] for c in sorted(b)])
    ks = summary([k[c][m] for c in sorted(k)])
    d = np.array([k[c][m] - b[c][m] for c in common])
    ds = summary(d)
    p = stats.wilcoxon(d).pvalue
    res[m] = (bs["mean"], ks["mean"], ds["mean"], ds["lo"], ds["hi"], p)
for m, r in res.items():
    print(m, *("%.6g" % v for v in r))
PY

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m/1e9}'; }
: >"$tmp/medcad.t"
: >"$tmp/scipy.t"
for r in $(seq "$runs"); do
	t0=$(now)
	medcad metrics diff HEAD >"$tmp/medcad.out"
	t1=$(now)
	echo $((t1 - t0)) >>"$tmp/medcad.t"
	t0=$(now)
	/usr/bin/python3 "$tmp/stats.py" "$tmp/base.json" "$tmp/cand.json" >"$tmp/scipy.out"
	t1=$(now)
	echo $((t1 - t0)) >>"$tmp/scipy.t"
done
m=$(median <"$tmp/medcad.t")
s=$(median <"$tmp/scipy.t")
echo "$n paired cases, 7 metrics; $runs runs; $(nproc) CPUs"
echo "medcad metrics diff (git + store + stats): median ${m} s"
echo "numpy/scipy (stats only, files given):     median ${s} s"
awk -v m="$m" -v s="$s" 'BEGIN {printf "ratio medcad/scipy: %.2f\n", m/s}'
echo "--- medcad"; cat "$tmp/medcad.out"
echo "--- scipy (metric, base mean, candidate mean, Δ, CI low, CI high, p)"; cat "$tmp/scipy.out"
