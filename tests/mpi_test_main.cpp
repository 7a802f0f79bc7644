// GoogleTest main for MPI tests: MPI and Kokkos live for the whole run; only rank 0 prints results, and the
// process fails if the test failed on any rank.
#include "comm/communicator.hpp"
#include "engine/context.hpp"

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  skein::engine::Context context(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (context.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local_failed = RUN_ALL_TESTS() != 0;
  skein::comm::Communicator world(context.world());
  const int any_failed = world.allreduce(local_failed, skein::comm::Op::max);
  if (local_failed && context.rank() != 0) std::fprintf(stderr, "test failed on rank %d\n", context.rank());
  return any_failed;
}
