# Timing helpers shared by the benchmarks (sourced).

# ms T0 T1: milliseconds between two $EPOCHREALTIME readings.
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) * 1000}'; }

# pct CSV NAME P: the P-quantile (0.5, 0.9) of column 3 over the rows whose column 1 is NAME.
pct() {
  awk -F, -v r="$2" 'NR>1 && $1==r {print $3}' "$1" | sort -n |
    awk -v p="$3" '{a[NR]=$1} END {i=int(p*NR+0.999); if (i<1) i=1; printf "%.2f", a[i]}'
}
