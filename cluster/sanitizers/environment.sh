# Sourced by cluster/sanitize.sh (arguments: the repository root, the folder for reports): the run-time
# options of the sanitizer build. Every process a test starts (mpirun's ranks, skein under the bad-inputs
# wrapper) inherits them.
root=${1:?usage: source environment.sh REPO_ROOT REPORT_DIR}
reports=${2:?usage: source environment.sh REPO_ROOT REPORT_DIR}
# halt_on_error: the first finding ends the process with an error, so the test fails. log_path: every
# report is also a file (NAME.PID), so a finding in a process whose exit status a test does not look at
# (a skein run expected to fail) is still seen: sanitize.sh fails when any report was written.
# detect_leaks: LeakSanitizer at exit, with the third-party leaks in lsan.supp suppressed.
# intercept_tls_get_addr=0: the runtimes here (GCC 12's, clang 14's) guess the layout of a dynamic TLS block
# from its address (a block 16 bytes past a page boundary is taken to start with a glibc <= 2.24 header,
# read from the 16 bytes before it). A malloc'd block lands there by chance; LeakSanitizer's tracer then
# scans a garbage range and dies ("Tracer caught signal 11 ... LeakSanitizer has encountered a fatal
# error"): a failed run with no finding, seen in CI and under load (google/sanitizers#1322; fixed after
# GCC 13 / LLVM 16). Off, dynamic TLS is not scanned for roots; no leak report here needed it.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:exitcode=86:check_initialization_order=1:intercept_tls_get_addr=0:log_path=$reports/asan"
# fast_unwind_on_malloc=0: Open MPI is built without frame pointers; the slow unwinder gives whole stacks.
export LSAN_OPTIONS="suppressions=$root/cluster/sanitizers/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
# Open MPI unloads its components in MPI_Finalize, which leaves their frames in a leak report without a
# module name to match in lsan.supp; kept loaded, they have one.
export OMPI_MCA_mca_base_component_disable_dlclose=1
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$reports/ubsan"
