#!/usr/bin/env python3
"""An external trainer for medcad, written against the stage contract.

medcad runs it as a pipeline stage and passes everything through the
environment (see docs/pipeline.md):

  MEDCAD_STAGE        the stage name
  MEDCAD_PARAMS       JSON file of the stage's params tables
  MEDCAD_INPUT_<DEP>  folder of each dependency (here: an nnU-Net raw dataset)
  MEDCAD_OUT          folder to fill with the model
  MEDCAD_METRICS      JSON file to write the training metrics to

The "model" is deliberately small: the HU threshold that maximises the mean
Dice on the training cases. A PyTorch or nnU-Net trainer has the same shape:
read the dataset folder, write the artifact into MEDCAD_OUT, report metrics.
Needs only Python 3 and numpy.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np

DTYPES = {2: np.uint8, 4: np.int16, 16: np.float32}


def read_nifti(path):
    """Reads a NIfTI-1 file (.nii or .nii.gz) into an array indexed [k, j, i]."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if struct.unpack("<i", data[:4])[0] != 348:
        sys.exit(f"{path}: not a little-endian NIfTI-1 file")
    dim = struct.unpack("<8h", data[40:56])
    datatype = struct.unpack("<h", data[70:72])[0]
    offset = int(struct.unpack("<f", data[108:112])[0])
    slope, inter = struct.unpack("<2f", data[112:120])
    if datatype not in DTYPES:
        sys.exit(f"{path}: NIfTI datatype {datatype} is not supported")
    n = dim[1] * dim[2] * dim[3]
    arr = np.frombuffer(data, dtype=DTYPES[datatype], count=n, offset=offset)
    arr = arr.reshape(dim[3], dim[2], dim[1]).astype(np.float32)
    if slope not in (0.0, 1.0) or inter != 0.0:
        arr = arr * (slope or 1.0) + inter
    return arr


def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * np.logical_and(a, b).sum() / s


def main():
    stage = os.environ["MEDCAD_STAGE"]
    params = json.load(open(os.environ["MEDCAD_PARAMS"]))
    inputs = [v for k, v in os.environ.items() if k.startswith("MEDCAD_INPUT_")]
    if len(inputs) != 1:
        sys.exit(f"{stage}: want exactly one input dataset, got {len(inputs)}")
    data = inputs[0]
    cfg = params.get("threshold", {})
    lo, hi, step = cfg.get("min_hu", 100), cfg.get("max_hu", 600), cfg.get("step_hu", 25)

    cases = sorted(f[: -len("_0000.nii.gz")] for f in os.listdir(os.path.join(data, "imagesTr")))
    if not cases:
        sys.exit(f"{data}/imagesTr: no training cases")
    pairs = [
        (read_nifti(os.path.join(data, "imagesTr", c + "_0000.nii.gz")),
         read_nifti(os.path.join(data, "labelsTr", c + ".nii.gz")) > 0)
        for c in cases
    ]
    best = max(
        ((float(np.mean([dice(ct >= t, lbl) for ct, lbl in pairs])), t) for t in range(lo, hi + 1, step))
    )
    out = os.environ["MEDCAD_OUT"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump({"kind": "threshold", "threshold_hu": best[1], "trained_on": cases}, f, indent=2)
    with open(os.environ["MEDCAD_METRICS"], "w") as f:
        json.dump({"train_dice": best[0], "threshold_hu": best[1]}, f)
    print(f"{stage}: threshold {best[1]} HU, training Dice {best[0]:.4f} on {len(cases)} cases")


if __name__ == "__main__":
    main()
