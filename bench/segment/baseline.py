#!/usr/bin/python3
"""The anchor for `medcad segment baseline`: the same classical bone
segmentation with nibabel + scipy.ndimage (threshold, 6-connected
components, keep those with at least KEEP of the largest one's voxels).

usage: baseline.py THRESHOLD_HU IN.nii.gz OUT.nii.gz [KEEP]
"""
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage


def main():
    threshold, src, dst = float(sys.argv[1]), sys.argv[2], sys.argv[3]
    keep = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
    img = nib.load(src)
    hu = np.asanyarray(img.dataobj)
    mask = hu > threshold
    labels, n = ndimage.label(mask)  # default structure: 6-connectivity
    out = np.zeros(mask.shape, dtype=np.uint8)
    if n:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        limit = np.ceil(keep * sizes.max())
        out = (sizes >= limit)[labels].astype(np.uint8)
        out[labels == 0] = 0
    nib.save(nib.Nifti1Image(out, img.affine), dst)


if __name__ == "__main__":
    main()
