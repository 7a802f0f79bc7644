#!/bin/sh
# Runs the real skein ($SKEIN_CATALOGUE_EXE) for the bad-inputs catalogue, under what a case asks for:
#   SKEIN_CATALOGUE_UNPRIVILEGED=1  permission bits bind even for root (no CAP_DAC_OVERRIDE/_READ_SEARCH)
#   SKEIN_CATALOGUE_FSIZE=BYTES     files may not grow past BYTES (`ulimit -f`, exact in bytes)
# mpirun starts this script once per rank, so every rank runs under the same limits.
set -e
exe=${SKEIN_CATALOGUE_EXE:?SKEIN_CATALOGUE_EXE is not set}
if [ -n "$SKEIN_CATALOGUE_FSIZE" ]; then
  set -- prlimit --fsize="$SKEIN_CATALOGUE_FSIZE" -- "$exe" "$@"
else
  set -- "$exe" "$@"
fi
if [ -n "$SKEIN_CATALOGUE_UNPRIVILEGED" ] && [ "$(id -u)" = 0 ]; then
  exec setpriv --inh-caps=-dac_override,-dac_read_search --bounding-set=-dac_override,-dac_read_search -- "$@"
fi
exec "$@"
