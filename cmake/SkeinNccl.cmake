# The NCCL backend's dependencies: SKEIN_ENABLE_NCCL=AUTO|ON|OFF decides whether comm/nccl.cpp is compiled.
# The backend is host code (g++ against the CUDA runtime headers), so it builds without a GPU and without a
# CUDA build of Kokkos. Sets SKEIN_HAVE_NCCL and, when ON, the imported target skein::nccl (NCCL + the CUDA
# runtime). SKEIN_NCCL_ROOT (or NCCL_ROOT) names an NCCL installation; when given, only it is searched.
#
# Used by the project and by the configure test in tests/cmake/, which includes this file alone.

set(SKEIN_ENABLE_NCCL AUTO CACHE STRING "NCCL backend for device memory: ON, OFF or AUTO")
set_property(CACHE SKEIN_ENABLE_NCCL PROPERTY STRINGS ON OFF AUTO)
string(TOUPPER "${SKEIN_ENABLE_NCCL}" _skein_nccl_mode)
if(NOT _skein_nccl_mode MATCHES "^(ON|OFF|AUTO)$")
  message(FATAL_ERROR "SKEIN_ENABLE_NCCL=${SKEIN_ENABLE_NCCL}: expected ON, OFF or AUTO")
endif()
set(SKEIN_NCCL_ROOT "" CACHE PATH "NCCL installation (include/nccl.h, lib/libnccl.so); empty: search CUDA's")
if(NOT SKEIN_NCCL_ROOT AND DEFINED ENV{NCCL_ROOT})
  set(SKEIN_NCCL_ROOT "$ENV{NCCL_ROOT}")
endif()

set(SKEIN_HAVE_NCCL OFF)
set(_skein_nccl_why "")
if(NOT _skein_nccl_mode STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(SKEIN_NCCL_ROOT)
    # A named root is the only place looked at: a wrong root must not silently pick up another NCCL.
    find_path(SKEIN_NCCL_INCLUDE_DIR nccl.h PATHS "${SKEIN_NCCL_ROOT}" PATH_SUFFIXES include NO_DEFAULT_PATH)
    find_library(SKEIN_NCCL_LIBRARY nccl PATHS "${SKEIN_NCCL_ROOT}" PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)
  else()
    find_path(SKEIN_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
    find_library(SKEIN_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  endif()
  if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cudart)
    set(_skein_nccl_why "the CUDA toolkit (CUDA runtime headers and libcudart) was not found; set CUDAToolkit_ROOT")
  elseif(NOT SKEIN_NCCL_INCLUDE_DIR OR NOT SKEIN_NCCL_LIBRARY)
    if(SKEIN_NCCL_ROOT)
      set(_skein_nccl_why "nccl.h or libnccl was not found under SKEIN_NCCL_ROOT=${SKEIN_NCCL_ROOT}")
    else()
      set(_skein_nccl_why "nccl.h or libnccl was not found next to CUDA ${CUDAToolkit_VERSION}; set SKEIN_NCCL_ROOT")
    endif()
  else()
    set(SKEIN_HAVE_NCCL ON)
  endif()
  if(NOT SKEIN_HAVE_NCCL AND _skein_nccl_mode STREQUAL "ON")
    message(FATAL_ERROR "SKEIN_ENABLE_NCCL=ON, but ${_skein_nccl_why}. "
                        "Use SKEIN_ENABLE_NCCL=AUTO or OFF to build the MPI-only engine.")
  endif()
endif()

if(SKEIN_HAVE_NCCL)
  if(NOT TARGET skein::nccl)
    add_library(skein::nccl INTERFACE IMPORTED)
    set_target_properties(skein::nccl PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${SKEIN_NCCL_INCLUDE_DIR}"
                                                 INTERFACE_LINK_LIBRARIES "${SKEIN_NCCL_LIBRARY};CUDA::cudart")
  endif()
  get_filename_component(SKEIN_NCCL_FOUND_ROOT "${SKEIN_NCCL_INCLUDE_DIR}" DIRECTORY)
  message(STATUS "skein: NCCL backend ON (${SKEIN_NCCL_LIBRARY}, CUDA runtime ${CUDAToolkit_VERSION})")
elseif(_skein_nccl_mode STREQUAL "OFF")
  message(STATUS "skein: NCCL backend OFF (SKEIN_ENABLE_NCCL=OFF): building the MPI-only engine")
else()
  message(STATUS "skein: NCCL backend OFF (AUTO: ${_skein_nccl_why}): building the MPI-only engine")
endif()
