// The process runtime: owns MPI (initialised first) and Kokkos (second), and finalises them in reverse.
#pragma once

#include <mpi.h>

namespace skein::engine {

class Context {
 public:
  // Hands Kokkos its own --kokkos-* arguments (and only those) and removes them from argv.
  Context(int& argc, char**& argv);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int node_rank() const { return node_rank_; }  // rank among the ranks on this node (device selection)
  int node_size() const { return node_size_; }
  // The world communicator; comm::Communicator duplicates it.
  MPI_Comm world() const { return MPI_COMM_WORLD; }

  // Ends every rank now (the "one rank failed alone" path: nothing to agree with).
  [[noreturn]] static void abort_all(int exit_code);

 private:
  int rank_ = 0;
  int size_ = 1;
  int node_rank_ = 0;
  int node_size_ = 1;
};

}  // namespace skein::engine
