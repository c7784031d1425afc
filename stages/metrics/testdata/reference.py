#!/usr/bin/python3
"""Independent reference for medcad's segmentation metrics (DESIGN.md §6).

Written with Debian's numpy and scipy only, deliberately in the most direct
way: border = mask XOR binary_erosion(mask, 6-connected, outside = 0);
directed distances = distance_transform_edt(~border_other, sampling=spacing)
read at the border voxels; percentiles with numpy's default (linear).

Usage:
  reference.py generate DIR   write the test cases to DIR/cases/ and their
                              metrics to DIR/golden.json
  reference.py compute DIR    recompute the metrics of the cases listed in
                              DIR/golden.json and print them as JSON
  reference.py bench T P SX SY SZ
                              metrics of two raw uint8 masks (i fastest)
                              of shape given by their .shape file; prints JSON

Volumes are raw uint8, i (x) fastest, gzip-compressed, in cases/NAME.truth.u8.gz
and cases/NAME.pred.u8.gz.
"""

import gzip
import json
import math
import os
import sys

import numpy as np
from scipy import ndimage

TOLERANCES = [0.5, 1.0, 2.0, 5.0]


def tol_key(t):
    # Same key as Go's strconv.FormatFloat(t, 'g', -1, 64) for these values.
    k = repr(float(t))
    return k[:-2] if k.endswith(".0") else k


def border(mask):
    st = ndimage.generate_binary_structure(3, 1)
    eroded = ndimage.binary_erosion(mask, structure=st, border_value=0)
    return mask ^ eroded


def metrics(truth, pred, spacing, tolerances):
    truth = truth.astype(bool)
    pred = pred.astype(bool)
    nt, npr = int(truth.sum()), int(pred.sum())
    out = {"truth_voxels": nt, "pred_voxels": npr}
    if nt == 0 and npr == 0:
        out.update(dice=1.0, iou=1.0, hd=0.0, hd95=0.0, assd=0.0, masd=0.0,
                   nsd={tol_key(t): 1.0 for t in tolerances}, flags=["both_empty"])
        return out
    if nt == 0 or npr == 0:
        out.update(dice=0.0, iou=0.0, hd=None, hd95=None, assd=None, masd=None,
                   nsd={tol_key(t): 0.0 for t in tolerances},
                   flags=["truth_empty" if nt == 0 else "pred_empty"])
        return out
    inter = int(np.logical_and(truth, pred).sum())
    out["dice"] = 2.0 * inter / (nt + npr)
    out["iou"] = inter / (nt + npr - inter)
    bt, bp = border(truth), border(pred)
    dt_t = ndimage.distance_transform_edt(~bt, sampling=spacing)
    dt_p = ndimage.distance_transform_edt(~bp, sampling=spacing)
    d_pg = dt_t[bp]  # from each pred border voxel to the truth border
    d_gp = dt_p[bt]
    out["hd"] = float(max(d_pg.max(), d_gp.max()))
    out["hd95"] = float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)))
    both = np.concatenate([d_pg, d_gp])
    out["assd"] = float(both.mean())
    out["masd"] = float((d_pg.mean() + d_gp.mean()) / 2)
    out["nsd"] = {tol_key(t): float(((d_pg <= t).sum() + (d_gp <= t).sum()) / both.size)
                  for t in tolerances}
    out["flags"] = []
    return out


def blob(rng, shape, sigma, frac):
    """A smooth random blob: thresholded Gaussian-filtered noise."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return f > np.quantile(f, 1 - frac)


def ball(shape, centre, radius, spacing=(1, 1, 1)):
    idx = np.indices(shape).astype(float)
    d2 = sum(((idx[a] - centre[a]) * spacing[a]) ** 2 for a in range(3))
    return d2 <= radius ** 2


def cases():
    rng = np.random.default_rng(20261126)
    out = []

    def add(name, truth, pred, spacing):
        out.append((name, truth.astype(np.uint8), pred.astype(np.uint8), list(spacing)))

    s = (40, 36, 24)
    t = blob(rng, s, 3, 0.2)
    p = blob(rng, s, 3, 0.2) | (t & blob(rng, s, 2, 0.6))
    add("blobs_aniso", t, p, (0.7, 0.9, 2.5))
    t = blob(rng, s, 2, 0.3)
    p = ndimage.binary_dilation(t, iterations=1) & ~blob(rng, s, 1.5, 0.1)
    add("blobs_dilated", t, p, (0.78125, 0.78125, 1.25))
    t = np.zeros((20, 18, 16), bool)
    t[:8, :, :] = True  # touches five faces of the volume
    p = np.zeros_like(t)
    p[:10, 3:, 2:] = True
    add("edge", t, p, (1.0, 0.5, 2.0))
    full = np.ones((9, 8, 7), bool)
    add("full_volume", full, full, (0.5, 0.6, 0.7))
    t = np.zeros((15, 14, 13), bool)
    p = np.zeros_like(t)
    t[3, 4, 5] = True
    p[11, 2, 9] = True
    add("single_voxels", t, p, (0.8, 1.1, 3.0))
    add("single_same", t, t.copy(), (0.8, 1.1, 3.0))
    sh = (32, 30, 28)
    t = ball(sh, (15.5, 14.5, 13.5), 10) & ~ball(sh, (15.5, 14.5, 13.5), 9)
    p = ball(sh, (16, 14, 14), 11) & ~ball(sh, (16, 14, 14), 10)
    add("thin_shells", t, p, (0.9, 0.9, 1.0))
    t = blob(rng, s, 3, 0.15)
    add("identical", t, t.copy(), (0.6, 0.7, 3.0))
    t = np.zeros((30, 20, 20), bool)
    p = np.zeros_like(t)
    t[2:8, 3:9, 4:10] = True
    p[20:27, 10:18, 11:19] = True
    add("disjoint", t, p, (1.2, 0.8, 0.5))
    e = np.zeros((10, 9, 8), bool)
    b = np.zeros_like(e)
    b[2:6, 3:7, 1:5] = True
    add("truth_empty", e, b, (1, 1, 1))
    add("pred_empty", b, e, (1, 1, 1))
    add("both_empty", e, e.copy(), (1, 1, 1))
    return out


def write_u8(path, a):
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(a.tobytes(order="F"))


def read_u8(path, shape):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8).reshape(shape, order="F")


def generate(d):
    os.makedirs(os.path.join(d, "cases"), exist_ok=True)
    golden = {"tolerances_mm": TOLERANCES, "cases": []}
    for name, t, p, sp in cases():
        write_u8(os.path.join(d, "cases", name + ".truth.u8.gz"), t)
        write_u8(os.path.join(d, "cases", name + ".pred.u8.gz"), p)
        golden["cases"].append({"name": name, "dim": list(t.shape), "spacing_mm": sp,
                                "metrics": metrics(t, p, sp, TOLERANCES)})
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
        f.write("\n")


def compute(d):
    with open(os.path.join(d, "golden.json")) as f:
        golden = json.load(f)
    res = {"tolerances_mm": golden["tolerances_mm"], "cases": []}
    for c in golden["cases"]:
        shape = tuple(c["dim"])
        t = read_u8(os.path.join(d, "cases", c["name"] + ".truth.u8.gz"), shape)
        p = read_u8(os.path.join(d, "cases", c["name"] + ".pred.u8.gz"), shape)
        res["cases"].append({"name": c["name"], "dim": c["dim"], "spacing_mm": c["spacing_mm"],
                             "metrics": metrics(t, p, c["spacing_mm"], golden["tolerances_mm"])})
    json.dump(res, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


def bench(tpath, ppath, spacing):
    with open(tpath + ".shape") as f:
        shape = tuple(int(x) for x in f.read().split())
    t = np.fromfile(tpath, np.uint8).reshape(shape, order="F")
    p = np.fromfile(ppath, np.uint8).reshape(shape, order="F")
    json.dump(metrics(t, p, spacing, [1.0]), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "compute":
        compute(sys.argv[2])
    elif len(sys.argv) == 7 and sys.argv[1] == "bench":
        bench(sys.argv[2], sys.argv[3], [float(x) for x in sys.argv[4:7]])
    else:
        sys.exit(__doc__)
