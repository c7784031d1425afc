#!/usr/bin/python3
"""scikit-image marching cubes on a raw volume written by gen (the anchor
medcad surface is compared with). Usage: skimage_mc.py FILE.{u8,i16} LEVEL SX SY SZ
Prints JSON: vertices, triangles, area_mm2."""
import json
import sys

import numpy as np
from skimage import measure

path, level = sys.argv[1], float(sys.argv[2])
spacing = tuple(float(x) for x in sys.argv[3:6])
with open(path + ".shape") as f:
    shape = tuple(int(x) for x in f.read().split())
dtype = np.uint8 if path.endswith(".u8") else np.dtype("<i2")
vol = np.fromfile(path, dtype).reshape(shape, order="F")
verts, faces, _, _ = measure.marching_cubes(vol, level=level, spacing=spacing)
json.dump({"vertices": len(verts), "triangles": len(faces),
           "area_mm2": float(measure.mesh_surface_area(verts, faces))}, sys.stdout)
sys.stdout.write("\n")
