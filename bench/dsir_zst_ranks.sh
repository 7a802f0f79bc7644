#!/usr/bin/env bash
# dsir on ONE single-frame .jsonl.zst file at 1 and 2 ranks (fewer files than ranks): MB/s of decompressed
# text (10^6 bytes / median wall seconds of 3 runs, start-up included), for each skein binary given, plus
# the speeds of zstd decoding and of featurising alone on the same text. Not a test: it only measures. On a
# loaded machine wall times say little about scaling; bench/dsir_zst_shares.cpp times each rank's share in
# thread CPU seconds instead.
#
#   bench/dsir_zst_ranks.sh [COPIES] SKEIN [SKEIN ...]    e.g. bench/dsir_zst_ranks.sh 12 build/bin/skein
#
# The corpus is COPIES copies of ../shared/data/brown/brown.jsonl (6.4 MB each), compressed with `zstd -3`
# (one frame); the target is the committed Brown 'government' sample.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
copies=${1:-12}
shift
work=$(mktemp -d /tmp/skein-zst-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
for _ in $(seq "$copies"); do cat "$here/../shared/data/brown/brown.jsonl"; done > "$work/raw.jsonl"
zstd -q -3 "$work/raw.jsonl" -o "$work/raw.jsonl.zst"
bytes=$(stat -c %s "$work/raw.jsonl")
target="$here/tests/data/dsir/brown_target.jsonl"
median() { sort -g | sed -n 2p; }
mbps() { /usr/bin/python3 -c "print(f'{$bytes / 1e6 / $1:.1f}')"; }
echo "corpus: $(/usr/bin/python3 -c "print(f'{$bytes/1e6:.0f}')") MB of text, $(stat -c %s "$work/raw.jsonl.zst") B compressed; load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
dec=$(for _ in 1 2 3; do /usr/bin/time -f %e zstd -d -c "$work/raw.jsonl.zst" 2>&1 >/dev/null; done | median)
echo "zstd -d alone: $(mbps "$dec") MB/s"
fit=$(for _ in 1 2 3; do
  rm -rf "$work/out"
  "${1}" run dsir --out "$work/out" --dsir.raw="$work/raw.jsonl" --dsir.target="$target" --dsir.num_select=1000 2>&1 |
    sed -n 's/.*fitting raw model: done.*(\([0-9.]*\) MB\/s per rank).*/\1/p'
done | median)
echo "featurising alone (the raw fit pass on the plain .jsonl, 1 rank, $1): $fit MB/s"
for skein in "$@"; do
  for ranks in 1 2; do
    walls=""
    for _ in 1 2 3; do
      rm -rf "$work/out"
      /usr/bin/time -o "$work/wall" -f %e mpirun -np "$ranks" "$skein" run dsir --out "$work/out" \
        --dsir.raw="$work/raw.jsonl.zst" --dsir.target="$target" --dsir.num_select=1000 >/dev/null 2>&1
      walls="$walls $(tail -1 "$work/wall")"
    done
    w=$(echo $walls | tr ' ' '\n' | median)
    echo "$skein, $ranks rank(s), 1 .zst file: $(mbps "$w") MB/s of decompressed text (median of$walls s)"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
