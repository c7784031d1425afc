#!/usr/bin/python3
"""Compares medcad eval --json output with reference.py's: prints the
largest relative difference over all metrics and fails above 1e-9."""
import json
import sys

go, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
pairs = [("dice", "dice"), ("iou", "iou"), ("hd_mm", "hd"), ("hd95_mm", "hd95"),
         ("assd_mm", "assd"), ("masd_mm", "masd")]
pairs = [(go[a], ref[b], a) for a, b in pairs] + [(go["nsd"][k], ref["nsd"][k], "nsd@" + k) for k in ref["nsd"]]
worst = 0.0
for g, r, name in pairs:
    d = abs(g - r) / max(1.0, abs(r))
    worst = max(worst, d)
    print("  %-8s medcad %.12g  scipy %.12g" % (name, g, r))
print("  largest relative difference: %.3g" % worst)
sys.exit(0 if worst <= 1e-9 else 1)
