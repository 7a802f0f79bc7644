// Speed of the DCDM network on one rank: the 16->16 3x3x3 convolution alone (GMAC/s) and one sample's
// inference and training forward + backward at the grids given (CPU seconds per sample).
//   OMP_NUM_THREADS=1 build/bin/skein_bench_cnn [grid ...]      (default: 32 64)
// On the dev VM (AMD EPYC Zen 4, one core, float, CPU time): conv 41.5 GMAC/s at 64^3 (a 512-bit FMA
// loop peaks at 57); 32^3 inference 39 GMAC/s, forward + backward 0.165 s per sample.
#include "comm/view_collectives.hpp"
#include "engine/context.hpp"
#include "engine/random.hpp"
#include "solvers/cnn3d.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace {

// Process CPU time, not wall time: the Kokkos backend here is Serial (one thread per rank), and CPU time
// stays meaningful on a machine shared with other jobs, where wall time does not.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

template <class F>
double best_of(int repeats, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const double start = cpu_seconds();
    f();
    Kokkos::fence();
    best = std::min(best, cpu_seconds() - start);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  skein::engine::Context context(argc, argv);
  std::vector<std::int64_t> grids;
  for (int a = 1; a < argc; ++a) grids.push_back(std::atoll(argv[a]));
  if (grids.empty()) grids = {32, 64};
  using namespace skein;
  {
    const std::int64_t n = 64;
    const int c = 16;
    Kokkos::View<float****, Kokkos::LayoutRight> in("in", n + 2, n + 2, n + 2, c),
        out("out", n + 2, n + 2, n + 2, c);
    Kokkos::View<float*> w("w", 27 * c * c), b("b", c);
    Kokkos::deep_copy(in, 0.5f);
    Kokkos::deep_copy(w, 0.01f);
    const double t = best_of(5, [&] { solvers::cnn::conv3x3x3<float>(in, w, b, true, out); });
    const double macs = double(n * n * n) * 27 * c * c;
    std::printf("conv3x3x3 16->16 float, %lld^3: %.4f s, %.2f GMAC/s (threads %d)\n",
                static_cast<long long>(n), t, macs / t * 1e-9, Kokkos::DefaultExecutionSpace().concurrency());
  }
  const comm::Communicator world(context.world());
  for (const std::int64_t n : grids) {
    const comm::CartDecomposition d(world, {n, n, n});
    solvers::cnn::DcdmArchitecture a;
    solvers::cnn::DcdmNetwork<float> net(a, d);
    net.initialize(1);
    const auto e = d.owned().extent;
    solvers::PoissonField r("r", e[0] + 2, e[1] + 2, e[2] + 2), q("q", e[0] + 2, e[1] + 2, e[2] + 2);
    Kokkos::deep_copy(r, 1.0);
    Kokkos::View<float*> grad("grad", a.parameter_count());
    const double infer = best_of(3, [&] { net.infer(r, q); });
    const double train = best_of(3, [&] {
      net.forward_for_training(r, q);
      net.backward(r, grad);
    });
    const double macs = a.macs_per_cell() * double(n * n * n);
    if (world.rank() == 0) {
      std::printf(
          "DCDM 64^3-architecture, grid %lld^3: infer %.3f s (%.2f GMAC/s), forward+backward %.3f s per "
          "sample\n",
          static_cast<long long>(n), infer, macs / infer * 1e-9, train);
    }
  }
  return 0;
}
