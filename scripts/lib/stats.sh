# Timing helpers shared by the benchmarks (sourced).

# ms T0 T1: milliseconds between two $EPOCHREALTIME readings.
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) * 1000}'; }

# pct CSV NAME P [COLUMN]: the P-quantile (0.5, 0.9; nearest rank) of COLUMN (default 3) over
# the rows whose column 1 is NAME and that have a value there. Every benchmark's p50/p90 and
# median come from here.
pct() {
  awk -F, -v r="$2" -v c="${4:-3}" 'NR>1 && $1==r && $c!="" {print $c}' "$1" | sort -g |
    awk -v p="$3" '{a[NR]=$1} END {if (!NR) {print "n/a"; exit} i=int(p*NR+0.999); if (i<1) i=1; printf "%.2f", a[i]}'
}
