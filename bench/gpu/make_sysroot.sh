#!/usr/bin/env bash
# Prepares .gpu/ for bench/gpu/run_on_h200.sh on a machine like the project's (Debian 12, x86-64): Kokkos'
# source as a tarball and, because the H200 image has CUDA, CMake and Python but not skein's Debian libraries,
# those libraries' .debs unpacked (dpkg -x: headers, shared libraries, Open MPI's mpirun, plugins and help
# files), pruned (static libraries, documentation, the Boost headers Boost.Program_options does not include)
# and packed as .gpu/sysroot.tar.gz. Everything stays in .gpu/ (ignored by .gitignore), which the device call
# carries (64 MiB at most; this makes about 35).
# Usage: bench/gpu/make_sysroot.sh [KOKKOS_GIT_DIR]   (default /work/.mirror/kokkos+kokkos/repo)
#   SKEIN_KOKKOS_CUDA: an installed Kokkos CUDA (default /opt/kokkos-4.6.01-cuda) packed when present.
# Run it in the checkout that the device tool sends (the session's own), since .gpu/ must travel with it.
set -euo pipefail
cd "$(dirname "$0")/../.."
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
sysroot=$debs/sysroot
mkdir -p .gpu "$sysroot"
kokkos_git=${1:-/work/.mirror/kokkos+kokkos/repo}
if [[ ! -f .gpu/kokkos-4.6.01.tar.gz ]]; then
  git -C "$kokkos_git" archive --prefix=kokkos-4.6.01/ 4.6.01 | gzip -9 >.gpu/kokkos-4.6.01.tar.gz
fi
# A Kokkos CUDA install made here (README "Building for GPUs"), so the GPU machine need not spend 2-3 minutes
# building it: relocatable (its CMake package and launcher find themselves), about 1.2 MB.
kokkos_cuda=${SKEIN_KOKKOS_CUDA:-/opt/kokkos-4.6.01-cuda}
if [[ -f $kokkos_cuda/lib/cmake/Kokkos/KokkosConfig.cmake && ! -f .gpu/kokkos-4.6.01-cuda-install.tar.gz ]]; then
  tar -czf .gpu/kokkos-4.6.01-cuda-install.tar.gz -C "$(dirname "$kokkos_cuda")" \
    --transform "s|^$(basename "$kokkos_cuda")|kokkos-4.6.01-cuda|" "$(basename "$kokkos_cuda")"
fi
# skein's build and run dependencies without what a CUDA image already has (compilers, libc, libstdc++, zlib).
packages=(openmpi-bin libopenmpi-dev libopenmpi3 openmpi-common libpmix2 libhwloc15 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1 libnl-3-200 libnl-route-3-200 libpsm2-2
  libpsm-infinipath1 libhdf5-openmpi-dev libhdf5-openmpi-103-1 libhdf5-openmpi-hl-100 libaec0 libsz2 libcurl4 libboost-program-options-dev libboost-program-options1.74-dev
  libboost-program-options1.74.0 libboost1.74-dev libsimdjson-dev libsimdjson14 libxxhash-dev libxxhash0
  libzstd-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libssl-dev libopenblas-dev libopenblas0-pthread
  libopenblas-pthread-dev libopenblas0 liblapacke-dev liblapacke libgtest-dev libgmock-dev libgfortran5
  liblapack3 libblas3 libtmglib3 libzstd1 pkgconf pkgconf-bin libpkgconf3)
(cd "$debs" && apt-get download "${packages[@]}")
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$sysroot"; done
# Static libraries go, except those that CMake packages name (zstd's static target is checked on import;
# Debian's GoogleTest is static only).
find "$sysroot" -name '*.a' ! -name 'libzstd.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' -delete
# Debian names mpirun, mpicxx, h5pcc through update-alternatives, which dpkg -x does not run.
for f in "$sysroot"/usr/bin/*.openmpi; do ln -sf "$(basename "$f")" "${f%.openmpi}"; done
rm -rf "$sysroot"/usr/share/{doc,man,locale,lintian}
keep=$(echo '#include <boost/program_options.hpp>' | g++ -std=c++17 -x c++ -M -I "$sysroot/usr/include" - |
  tr ' \\' '\n\n' | grep "^$sysroot/usr/include/boost/" | sort -u)
find "$sysroot/usr/include/boost" -type f | sort | comm -23 - <(echo "$keep") | xargs rm -f
lib=$sysroot/usr/lib/x86_64-linux-gnu
# More of Debian's update-alternatives links: OpenBLAS as BLAS and LAPACK (solvers' find_library(openblas),
# CMake's FindLAPACK) and libmpi.so.
for so in libopenblas.so libopenblas.so.0 libblas.so libblas.so.3 liblapack.so liblapack.so.3; do
  ln -sf "openblas-pthread/$so" "$lib/$so"
done
ln -sf libmpi.so.40 "$lib/libmpi.so"
# The libraries the packed ones load beyond glibc and GCC's runtime (libcurl's LDAP/Kerberos/TLS, libibverbs'
# providers, libcrypto, libz, ...), copied from this machine into sysroot/extra: run_on_h200.sh links each
# into the sysroot only where the image lacks that soname, so the image's own (newer) copies win.
export LD_LIBRARY_PATH=$lib:$sysroot/lib/x86_64-linux-gnu:$lib/openmpi/lib:$lib/openblas-pthread:$lib/hdf5/openmpi
mkdir -p "$sysroot/extra"
find "$sysroot" -type f \( -name '*.so*' -o -perm -u+x \) -print0 | xargs -0 file -N |
  awk -F: '/ELF/ {print $1}' >"$debs/elf.txt"
xargs -r ldd <"$debs/elf.txt" >"$debs/ldd.txt" 2>/dev/null || true  # ldd fails on a few plugins: no matter
awk '/=> \// {print $3}' "$debs/ldd.txt" | sort -u | grep -v "^$sysroot/" |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so' |
  while read -r path; do cp -L "$path" "$sysroot/extra/$(basename "$path")"; done
# Unversioned names the link lines ask for (h5pcc -show: -lcrypto -lcurl -lsz -lz); run_on_h200.sh points
# those whose target is not in the sysroot at the image's copy.
ln -sf libcurl.so.4 "$lib/libcurl.so"
ln -sf libsz.so.2 "$lib/libsz.so"
ln -sf libz.so.1 "$lib/libz.so"
ln -sf libcrypto.so.3 "$lib/libcrypto.so"
tar -czf .gpu/sysroot.tar.gz -C "$debs" sysroot
# Open MPI finds its helpers and plugins relative to OPAL_PREFIX (set by run_on_h200.sh).
du -sh .gpu/*
