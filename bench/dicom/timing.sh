# Shared by the bench/dicom scripts (sourced; needs $work).

# median: the median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# timed NAME CMD...: runs CMD with a fresh output folder $work/out-NAME;
# appends its wall seconds to NAME.times and its CPU seconds (user +
# system, children included) to NAME.cpu. CPU time shows the work done
# whatever the machine's load; wall time is what a user waits.
timed() {
  local name=$1; shift
  rm -rf "$work/out-$name"; mkdir "$work/out-$name"
  /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>"$work/$name.err" || { cat "$work/$name.err" >&2; exit 1; }
  awk '{print $1}' "$work/t" >>"$work/$name.times"
  awk '{print $2 + $3}' "$work/t" >>"$work/$name.cpu"
}
