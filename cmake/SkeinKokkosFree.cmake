# Proves that the targets that run no kernel (JSON reading, Slurm submission, the CLI) do not depend on
# Kokkos, so they build with the host compiler when Kokkos is a CUDA build (issue 7):
# 1. at configure time, no Kokkos target is in their link closure;
# 2. at build time (with the tests), their sources and the CLI's are compiled once more with a
#    Kokkos_Core.hpp that is an #error ahead of every include path, so an include of Kokkos, even through
#    another skein header, fails the build and names the file.

set(SKEIN_KOKKOS_FREE_TARGETS skein_engine_core skein_comm_core skein_io_json skein_cluster)
if(TARGET skein_comm_nccl)
  list(APPEND SKEIN_KOKKOS_FREE_TARGETS skein_comm_nccl)  # the NCCL backend: host code, no kernels
endif()
# Sources that must not include Kokkos although their target (the jobs library) links it.
set(SKEIN_KOKKOS_FREE_SOURCES ${PROJECT_SOURCE_DIR}/jobs/cli.cpp ${PROJECT_SOURCE_DIR}/jobs/main.cpp)

# Sets `out` to the chain "a -> b -> Kokkos::..." when `target` reaches a Kokkos target, else "".
function(_skein_kokkos_path target chain out)
  set(${out} "" PARENT_SCOPE)
  if(target MATCHES "^Kokkos::|^kokkos|^trilinos_kokkos")
    set(${out} "${chain}${target}" PARENT_SCOPE)
    return()
  endif()
  if(NOT TARGET ${target})
    return()
  endif()
  get_property(seen GLOBAL PROPERTY _SKEIN_KOKKOS_SEEN)
  if(target IN_LIST seen)
    return()
  endif()
  set_property(GLOBAL APPEND PROPERTY _SKEIN_KOKKOS_SEEN ${target})
  get_target_property(aliased ${target} ALIASED_TARGET)
  if(aliased)
    _skein_kokkos_path(${aliased} "${chain}" found)
    set(${out} "${found}" PARENT_SCOPE)
    return()
  endif()
  set(deps "")
  get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
  if(interface)
    list(APPEND deps ${interface})
  endif()
  get_target_property(imported ${target} IMPORTED)
  get_target_property(type ${target} TYPE)
  if(NOT imported AND NOT type STREQUAL "INTERFACE_LIBRARY")
    get_target_property(direct ${target} LINK_LIBRARIES)
    if(direct)
      list(APPEND deps ${direct})
    endif()
  endif()
  foreach(dep IN LISTS deps)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" dep "${dep}")
    if(dep MATCHES "^\\$<")
      continue()
    endif()
    _skein_kokkos_path(${dep} "${chain}${target} -> " found)
    if(found)
      set(${out} "${found}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

foreach(target IN LISTS SKEIN_KOKKOS_FREE_TARGETS)
  set_property(GLOBAL PROPERTY _SKEIN_KOKKOS_SEEN "")
  _skein_kokkos_path(${target} "" path)
  if(path)
    message(FATAL_ERROR "skein: ${target} must not depend on Kokkos (issue 7), but links ${path}")
  endif()
endforeach()

# Step 2 compiles sources only (nothing runs), so the sanitizer build (SKEIN_SANITIZE, CI's second full
# build) leaves it to the Release build rather than compile those sources a third time.
if(SKEIN_ENABLE_TESTS AND NOT SKEIN_SANITIZE)
  set(_skein_poison_targets "")
  foreach(target IN LISTS SKEIN_KOKKOS_FREE_TARGETS)
    get_target_property(sources ${target} SOURCES)
    get_target_property(dir ${target} SOURCE_DIR)
    list(TRANSFORM sources PREPEND "${dir}/")
    get_target_property(libraries ${target} LINK_LIBRARIES)
    add_library(${target}_kokkos_free_check OBJECT ${sources})
    target_include_directories(${target}_kokkos_free_check BEFORE PRIVATE
                               ${PROJECT_SOURCE_DIR}/cmake/kokkos_poison)
    target_link_libraries(${target}_kokkos_free_check PRIVATE ${libraries})
    target_include_directories(${target}_kokkos_free_check
                               PRIVATE $<TARGET_PROPERTY:${target},INCLUDE_DIRECTORIES>)
    target_compile_definitions(${target}_kokkos_free_check
                               PRIVATE $<TARGET_PROPERTY:${target},COMPILE_DEFINITIONS>)
    list(APPEND _skein_poison_targets ${target}_kokkos_free_check)
  endforeach()
  # The CLI's objects: the jobs library brings Kokkos' include path, which the poison directory precedes.
  add_library(skein_cli_kokkos_free_check OBJECT ${SKEIN_KOKKOS_FREE_SOURCES})
  target_include_directories(skein_cli_kokkos_free_check BEFORE PRIVATE ${PROJECT_SOURCE_DIR}/cmake/kokkos_poison)
  target_link_libraries(skein_cli_kokkos_free_check PRIVATE skein_jobs_lib Boost::program_options)
  add_custom_target(skein_kokkos_free_check DEPENDS ${_skein_poison_targets} skein_cli_kokkos_free_check)
endif()
