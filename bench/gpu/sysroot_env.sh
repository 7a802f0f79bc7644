# Sourced by run_on_h200.sh: makes the Debian 12 libraries that make_sysroot.sh unpacked at $1 (default
# /tmp/sysroot) usable where they were not installed: tools on PATH, the loader's path, Open MPI and PMIx
# relocated there, CMake, pkg-config and h5pcc pointed there, and the copied extra libraries linked in only
# where the machine lacks them (its own, newer, copies win).
# Usage: source bench/gpu/sysroot_env.sh [SYSROOT]
sys=${1:-/tmp/sysroot}
sys_lib=$sys/usr/lib/x86_64-linux-gnu
# Debian names mpirun, mpicxx, h5pcc through update-alternatives, which dpkg -x does not run.
for f in "$sys"/usr/bin/*.openmpi; do ln -sf "$(basename "$f")" "${f%.openmpi}"; done
# h5pcc names its install prefix literally (FindHDF5 reads its -show output), and links the static
# libraries unless told otherwise (make_sysroot.sh packs the shared ones only).
sed -i "s|^prefix=\"/usr\"|prefix=\"$sys/usr\"|" "$sys/usr/bin/h5pcc.openmpi"
export HDF5_USE_SHLIB=yes
# Path of a soname in the machine's own loader cache, if any.
_skein_image_lib() { /sbin/ldconfig -p 2>/dev/null | awk -v so="$1" '$1 == so && /x86-64/ {print $NF; exit}'; }
for f in "$sys"/extra/*; do
  so=$(basename "$f")
  [[ -e $sys_lib/$so || -n $(_skein_image_lib "$so") ]] || ln -sf "$f" "$sys_lib/$so"
done
# Unversioned link names whose target the sysroot lacks (libz.so -> libz.so.1): the machine's copy.
for f in "$sys_lib"/*.so; do
  if [[ -L $f && ! -e $f ]]; then
    target=$(_skein_image_lib "$(readlink "$f")")
    [[ -n $target ]] && ln -sf "$target" "$f"
  fi
done
export PATH=$sys/usr/bin:$PATH
# Also how the linker finds the shared libraries' own dependencies (libhdf5 -> libcurl -> ...).
export LD_LIBRARY_PATH=$sys_lib:$sys/lib/x86_64-linux-gnu:$sys_lib/openmpi/lib:$sys_lib/openblas-pthread:${LD_LIBRARY_PATH:-}
# Open MPI and PMIx find their plugins, help files and wrapper data relative to these.
export OPAL_PREFIX=$sys/usr PMIX_PREFIX=$sys_lib/pmix2 PMIX_DATADIR=$sys_lib/pmix2/share
export PMIX_MCA_mca_base_component_path=$sys_lib/pmix2/lib/pmix
export CMAKE_PREFIX_PATH=$sys/usr:$sys_lib/cmake${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export PKG_CONFIG_LIBDIR=$sys_lib/pkgconfig:$sys/usr/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$sys
export CPATH=$sys/usr/include:$sys/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}
