# The configure test of SKEIN_ENABLE_NCCL (issue 11), run by ctest as `cmake -P`: with an NCCL root that
# holds no NCCL, ON fails at configure with the message, AUTO configures the MPI-only engine and says so,
# OFF says so, a bad mode is refused. Needs -DPROJECT_DIR (tests/cmake/nccl_configure) and -DWORK_DIR.

function(configure_with name expect_success expect_text)
  set(build "${WORK_DIR}/${name}")
  file(REMOVE_RECURSE "${build}")
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${PROJECT_DIR}" -B "${build}" ${ARGN}
                  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  string(REGEX REPLACE "[ \t\r\n]+" " " flat "${all}")  # CMake wraps long messages
  if(expect_success AND NOT result EQUAL 0)
    message(FATAL_ERROR "${name}: configure failed (${result}) but should succeed:\n${all}")
  elseif(NOT expect_success AND result EQUAL 0)
    message(FATAL_ERROR "${name}: configure succeeded but should fail:\n${all}")
  endif()
  string(FIND "${flat}" "${expect_text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${name}: expected \"${expect_text}\" in the output:\n${all}")
  endif()
  message(STATUS "${name}: ok (${expect_text})")
endfunction()

set(bogus "${WORK_DIR}/no-nccl-here")
file(MAKE_DIRECTORY "${bogus}/include" "${bogus}/lib")

configure_with(on_without_nccl FALSE
  "SKEIN_ENABLE_NCCL=ON, but nccl.h or libnccl was not found under SKEIN_NCCL_ROOT=${bogus}"
  -DSKEIN_ENABLE_NCCL=ON "-DSKEIN_NCCL_ROOT=${bogus}")
configure_with(auto_without_nccl TRUE "building the MPI-only engine"
  -DSKEIN_ENABLE_NCCL=AUTO "-DSKEIN_NCCL_ROOT=${bogus}")
configure_with(auto_result TRUE "result: SKEIN_HAVE_NCCL=OFF"
  -DSKEIN_ENABLE_NCCL=AUTO "-DSKEIN_NCCL_ROOT=${bogus}")
configure_with(off TRUE "NCCL backend OFF (SKEIN_ENABLE_NCCL=OFF)" -DSKEIN_ENABLE_NCCL=OFF)
configure_with(bad_mode FALSE "SKEIN_ENABLE_NCCL=MAYBE: expected ON, OFF or AUTO" -DSKEIN_ENABLE_NCCL=MAYBE)
# Where this build found NCCL, the same detection finds it again and says what it enabled.
if(SKEIN_HAVE_NCCL)
  configure_with(on_with_nccl TRUE "result: SKEIN_HAVE_NCCL=ON" -DSKEIN_ENABLE_NCCL=ON
                 "-DSKEIN_NCCL_ROOT=${SKEIN_NCCL_ROOT}")
endif()
