# ratios.gp - the bench's ratios to their baselines, as bars.
#   gnuplot -e "in='results.csv'; out='ratios.png'" bench/ratios.gp
# Reads in.ratios.tsv (label, ratio), written by bench beside its CSV.
set terminal pngcairo size 1100,620 font "sans,10" noenhanced
set output out
set title "libq7 ratio to the baseline measured in the same run (higher is better)"
set datafile separator "\t"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -35 left nomirror
set ytics nomirror
set grid ytics
set logscale y
set yrange [0.1:*]
set ylabel "ratio"
set key off
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "#aa0000" dt 2
plot in.".ratios.tsv" using 2:xtic(1) lc rgb "#3b6ea8"
