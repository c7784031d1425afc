# A toy evaluation in medcad eval's per-case format: four cases whose Dice
# grows with the quality and the data the model learnt from.
read q n < "$MEDCAD_INPUT_TRAIN/model.txt"
awk -v q="$q" -v n="$n" 'BEGIN {
  out = ENVIRON["MEDCAD_OUT"] "/eval.json"
  printf "{\"tolerances_mm\": [], \"cases\": [" > out
  for (i = 1; i <= 4; i++) {
    d = 0.5 + q/1000 + n/100 + i/1000; h = 10 - n/10 + i/10
    printf "%s{\"case\": \"c-00000%d\", \"dice\": %.4f, \"iou\": %.4f, \"hd_mm\": %.2f, \"hd95_mm\": %.2f, \"assd_mm\": %.3f, \"masd_mm\": %.3f, \"nsd\": {}, \"truth_voxels\": 1000, \"pred_voxels\": 1000}", (i > 1 ? ", " : ""), i, d, d/(2-d), h+1, h, h/10, h/10 > out
    sd += d; sh += h
  }
  printf "]}\n" > out
  printf "{\"dice\": %.4f, \"hd95_mm\": %.3f}\n", sd/4, sh/4 > ENVIRON["MEDCAD_METRICS"]
}'
