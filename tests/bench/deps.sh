#!/bin/sh
# The Debian packages only the benchmark needs (make bench), on top of the
# project's: twemproxy and pgbouncer to compare with, gnuplot for the plot, jq for
# the report.
# perf (linux-perf) is used when present.
exec sh "$(dirname "$0")/../deps.sh" nutcracker gnuplot-nox jq pgbouncer
