#include "solvers/cnn3d.hpp"

#include "comm/halo.hpp"
#include "engine/error.hpp"
#include "engine/random.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

namespace skein::solvers::cnn {

// --- Architecture -----------------------------------------------------------------------------------

std::int64_t DcdmArchitecture::conv_weight_offset(int l) const {
  if (l == 0) return 0;
  const std::int64_t c = channels;
  return 27 * c + c + static_cast<std::int64_t>(l - 1) * (27 * c * c + c);
}

std::int64_t DcdmArchitecture::parameter_count() const {
  return output_bias_offset() + 1;
}

double DcdmArchitecture::macs_per_cell() const {
  const double c = channels;
  const double fine_convs = 2.0 + 2.0 * fine_pairs_before + 2.0 * fine_pairs_after;
  return 27.0 * c + 27.0 * c * c * (fine_convs + 2.0 * coarse_pairs / 8.0) + c;
}

void DcdmArchitecture::validate() const {
  if (channels < 1 || channels > 64) {
    throw std::invalid_argument("channels must be in [1, 64], got " + std::to_string(channels));
  }
  if (fine_pairs_before < 0) {
    throw std::invalid_argument("fine_pairs_before must be >= 0, got " + std::to_string(fine_pairs_before));
  }
  if (coarse_pairs < 0)
    throw std::invalid_argument("coarse_pairs must be >= 0, got " + std::to_string(coarse_pairs));
  if (fine_pairs_after < 0) {
    throw std::invalid_argument("fine_pairs_after must be >= 0, got " + std::to_string(fine_pairs_after));
  }
}

namespace {

template <class Scalar>
using Act = Kokkos::View<Scalar****, Kokkos::LayoutRight>;

// Owned extents of a block; padded fields have one ghost layer on each side.
struct Extent3 {
  std::int64_t n0 = 0, n1 = 0, n2 = 0;
  std::int64_t cells() const { return n0 * n1 * n2; }
};

Extent3 extent_of(const comm::Box3& box) {
  return {box.extent[0], box.extent[1], box.extent[2]};
}

// --- The convolution ----------------------------------------------------------------------------------
// Full unrolling of a short loop over compile-time channels. GCC needs it to keep a weight-gradient
// tile's accumulators in registers (without it: 6 instead of 30 GMAC/s) and to schedule the convolution's
// broadcasts well; other compilers take the hint or ignore it.
#if defined(__CUDACC__) || defined(__clang__)
#define SKEIN_CNN_UNROLL(n) _Pragma("unroll")
#elif defined(__GNUC__)
#define SKEIN_CNN_PRAGMA(x) _Pragma(#x)
#define SKEIN_CNN_UNROLL(n) SKEIN_CNN_PRAGMA(GCC unroll n)
#else
#define SKEIN_CNN_UNROLL(n)
#endif

// Direct convolution, channels last. A work item is a run of NB cells along the innermost axis; its NB x CO
// accumulators stay in registers while the 27 taps x CI input channels stream by, each tap's weights
// (CI x CO contiguous, at most 27 KiB per layer in float) staying in L1. The o-loop is the vector loop (CO
// compile-time: 16 floats = two 256-bit or one 512-bit register). CI or CO = 0 means "given at run time"
// (any channel count up to 64). NB is a compile-time constant so that every accumulator index is one:
// full runs use KB cells, the last n2 % KB cells of a row go one by one in a second launch.
//
// out semantics: accumulate: out_a += acc (the input gradient; no bias, no activation). Otherwise
// a = act(acc + bias); out_a = a where given; out_sum = a + skip where given.
template <class Scalar, int CI, int CO, int NB>
KOKKOS_INLINE_FUNCTION void conv_cells(const Scalar* in, int ci, const Scalar* weights, const Scalar* bias,
                                       int co, std::int64_t p1, std::int64_t p2, std::int64_t i,
                                       std::int64_t j, std::int64_t k0, bool relu, bool accumulate,
                                       Scalar* out_a, const Scalar* skip, Scalar* out_sum) {
  constexpr int MAXC = CO > 0 ? CO : 64;
  Scalar acc[NB][MAXC];
  for (int v = 0; v < NB; ++v)
    for (int o = 0; o < co; ++o) acc[v][o] = 0;
  for (int tap = 0; tap < 27; ++tap) {
    const int di = tap / 9, dj = (tap / 3) % 3, dk = tap % 3;
    const Scalar* w = weights + tap * ci * co;
    const Scalar* x = in + (((i + di) * p1 + (j + dj)) * p2 + k0 + dk) * ci;
    SKEIN_CNN_UNROLL(16)
    for (int c = 0; c < ci; ++c) {
      const Scalar* wc = w + c * co;
      for (int v = 0; v < NB; ++v) {
        const Scalar xv = x[v * ci + c];
        for (int o = 0; o < co; ++o) acc[v][o] += xv * wc[o];
      }
    }
  }
  for (int v = 0; v < NB; ++v) {
    const std::int64_t at = (((i + 1) * p1 + (j + 1)) * p2 + (k0 + v + 1)) * co;
    if (accumulate) {
      for (int o = 0; o < co; ++o) out_a[at + o] += acc[v][o];
      continue;
    }
    for (int o = 0; o < co; ++o) {
      Scalar s = acc[v][o] + (bias != nullptr ? bias[o] : Scalar(0));
      if (relu && !(s > 0)) s = 0;
      if (out_a != nullptr) out_a[at + o] = s;
      if (out_sum != nullptr) out_sum[at + o] = s + skip[at + o];
    }
  }
}

template <class Scalar, int CI, int CO>
void conv_kernel(const Scalar* in, int ci_runtime, const Scalar* weights, const Scalar* bias, int co_runtime,
                 Extent3 e, bool relu, bool accumulate, Scalar* out_a, const Scalar* skip, Scalar* out_sum) {
  constexpr int KB = (CO > 0 && CO <= 16) ? 8 : 4;
  const int ci = CI > 0 ? CI : ci_runtime;
  const int co = CO > 0 ? CO : co_runtime;
  const std::int64_t n1 = e.n1, n2 = e.n2, p1 = e.n1 + 2, p2 = e.n2 + 2;
  const std::int64_t full = n2 / KB, rest = n2 % KB;
  if (full > 0) {
    Kokkos::parallel_for(
        "skein::cnn::conv3x3x3", Kokkos::RangePolicy<>(0, e.n0 * n1 * full),
        KOKKOS_LAMBDA(const std::int64_t t) {
          const std::int64_t kb = t % full, ij = t / full;
          conv_cells<Scalar, CI, CO, KB>(in, ci, weights, bias, co, p1, p2, ij / n1, ij % n1, kb * KB, relu,
                                         accumulate, out_a, skip, out_sum);
        });
  }
  if (rest > 0) {
    Kokkos::parallel_for(
        "skein::cnn::conv3x3x3_row_ends", Kokkos::RangePolicy<>(0, e.n0 * n1 * rest),
        KOKKOS_LAMBDA(const std::int64_t t) {
          const std::int64_t v = t % rest, ij = t / rest;
          conv_cells<Scalar, CI, CO, 1>(in, ci, weights, bias, co, p1, p2, ij / n1, ij % n1, full * KB + v,
                                        relu, accumulate, out_a, skip, out_sum);
        });
  }
}

// Per-block partial sums of the weight and bias gradient: dW[tap][c][o] = sum over owned cells p of
// in(p + tap, c) dz(p, o), db[o] = sum dz(p, o). Block b (of `blocks`) takes a contiguous range of (i, j)
// rows and writes partial[b][0 .. 27 ci co + co) (no atomics); a second kernel adds the blocks. For each
// row and tap, the CB x CO accumulators (8 x 16 of a 16-channel layer: 16 256-bit registers, 16
// independent FMA chains) stay in registers while the row's cells stream by: per cell one vector load of
// dz and CB broadcast FMAs. A one-input-channel layer has a single chain per tap, so its cells are split
// over KS interleaved partial sums to hide the FMA latency.
template <class Scalar, int CI, int CO>
void conv_weight_partials(const Scalar* in, int ci_runtime, const Scalar* dz, int co_runtime, Extent3 e,
                          Scalar* partial, std::int64_t blocks) {
  constexpr int MAXC = CO > 0 ? CO : 64;
  constexpr int CB = (CI > 0 && CI % 8 == 0) ? 8 : ((CI > 0 && CI % 4 == 0) ? 4 : 1);
  constexpr int KS = CB == 1 ? 4 : 1;
  const int ci = CI > 0 ? CI : ci_runtime;
  const int co = CO > 0 ? CO : co_runtime;
  const std::int64_t n1 = e.n1, n2 = e.n2, p1 = e.n1 + 2, p2 = e.n2 + 2;
  const std::int64_t rows = e.n0 * e.n1;
  const std::int64_t size = 27LL * ci * co + co;
  const std::int64_t n2_split = n2 - n2 % KS;
  Kokkos::parallel_for(
      "skein::cnn::conv_weight_partials", Kokkos::RangePolicy<>(0, blocks),
      KOKKOS_LAMBDA(const std::int64_t b) {
        Scalar* p = partial + b * size;
        for (std::int64_t x = 0; x < size; ++x) p[x] = 0;
        const std::int64_t begin = rows * b / blocks, end = rows * (b + 1) / blocks;
        for (std::int64_t r = begin; r < end; ++r) {
          const std::int64_t i = r / n1, j = r % n1;
          const Scalar* d = dz + (((i + 1) * p1 + (j + 1)) * p2 + 1) * co;
          Scalar bias_acc[MAXC];
          for (int o = 0; o < co; ++o) bias_acc[o] = 0;
          for (std::int64_t k = 0; k < n2; ++k)
            for (int o = 0; o < co; ++o) bias_acc[o] += d[k * co + o];
          for (int o = 0; o < co; ++o) p[27LL * ci * co + o] += bias_acc[o];
          for (int tap = 0; tap < 27; ++tap) {
            const int di = tap / 9, dj = (tap / 3) % 3, dk = tap % 3;
            const Scalar* x = in + (((i + di) * p1 + (j + dj)) * p2 + dk) * ci;
            Scalar* pt = p + tap * ci * co;
            for (int c0 = 0; c0 < ci; c0 += CB) {
              Scalar acc[KS][CB][MAXC];
              for (int s = 0; s < KS; ++s)
                for (int g = 0; g < CB; ++g)
                  for (int o = 0; o < co; ++o) acc[s][g][o] = 0;
              for (std::int64_t k = 0; k < n2_split; k += KS) {
                SKEIN_CNN_UNROLL(4)
                for (int s = 0; s < KS; ++s) {
                  const Scalar* dk_row = d + (k + s) * co;
                  const Scalar* xk = x + (k + s) * ci + c0;
                  SKEIN_CNN_UNROLL(16)
                  for (int g = 0; g < CB; ++g) {
                    const Scalar xv = xk[g];
                    SKEIN_CNN_UNROLL(16)
                    for (int o = 0; o < co; ++o) acc[s][g][o] += xv * dk_row[o];
                  }
                }
              }
              for (std::int64_t k = n2_split; k < n2; ++k) {
                for (int g = 0; g < CB; ++g) {
                  const Scalar xv = x[k * ci + c0 + g];
                  for (int o = 0; o < co; ++o) acc[0][g][o] += xv * d[k * co + o];
                }
              }
              for (int s = 1; s < KS; ++s)
                for (int g = 0; g < CB; ++g)
                  for (int o = 0; o < co; ++o) acc[0][g][o] += acc[s][g][o];
              for (int g = 0; g < CB; ++g)
                for (int o = 0; o < co; ++o) pt[(c0 + g) * co + o] += acc[0][g][o];
            }
          }
        }
      });
}

// Dispatch to compile-time channel counts for the common widths.
template <class Scalar>
void conv_dispatch(const Scalar* in, int ci, const Scalar* weights, const Scalar* bias, int co, Extent3 e,
                   bool relu, bool accumulate, Scalar* out_a, const Scalar* skip, Scalar* out_sum) {
  if (e.cells() == 0) return;
#define SKEIN_CNN_CONV(CI_, CO_) \
  return conv_kernel<Scalar, CI_, CO_>(in, ci, weights, bias, co, e, relu, accumulate, out_a, skip, out_sum)
  if (co == 16) {
    if (ci == 16) SKEIN_CNN_CONV(16, 16);
    if (ci == 1) SKEIN_CNN_CONV(1, 16);
  } else if (co == 8) {
    if (ci == 8) SKEIN_CNN_CONV(8, 8);
    if (ci == 1) SKEIN_CNN_CONV(1, 8);
  } else if (co == 32) {
    if (ci == 32) SKEIN_CNN_CONV(32, 32);
    if (ci == 1) SKEIN_CNN_CONV(1, 32);
  }
  SKEIN_CNN_CONV(0, 0);
#undef SKEIN_CNN_CONV
}

template <class Scalar>
void weight_partials_dispatch(const Scalar* in, int ci, const Scalar* dz, int co, Extent3 e, Scalar* partial,
                              std::int64_t blocks) {
#define SKEIN_CNN_WGRAD(CI_, CO_) \
  return conv_weight_partials<Scalar, CI_, CO_>(in, ci, dz, co, e, partial, blocks)
  if (co == 16) {
    if (ci == 16) SKEIN_CNN_WGRAD(16, 16);
    if (ci == 1) SKEIN_CNN_WGRAD(1, 16);
  } else if (co == 8) {
    if (ci == 8) SKEIN_CNN_WGRAD(8, 8);
    if (ci == 1) SKEIN_CNN_WGRAD(1, 8);
  } else if (co == 32) {
    if (ci == 32) SKEIN_CNN_WGRAD(32, 32);
    if (ci == 1) SKEIN_CNN_WGRAD(1, 32);
  }
  SKEIN_CNN_WGRAD(0, 0);
#undef SKEIN_CNN_WGRAD
}

// Packs conv l's PyTorch-layout weights for the forward kernel ([tap][in][out]) and, flipped in space and
// transposed in channels, for the input gradient ([26 - tap][out][in]: the adjoint of a 'same' convolution
// is the convolution with the flipped kernel).
template <class Scalar>
void pack_weights(const Kokkos::View<Scalar*>& params, std::int64_t weight_offset, int ci, int co,
                  const Kokkos::View<Scalar*>& forward, const Kokkos::View<Scalar*>& adjoint,
                  std::int64_t packed_offset) {
  const std::int64_t n = 27LL * ci * co;
  Kokkos::parallel_for(
      "skein::cnn::pack_weights", Kokkos::RangePolicy<>(0, n), KOKKOS_LAMBDA(const std::int64_t x) {
        const std::int64_t tap = x % 27, c = (x / 27) % ci, o = x / (27LL * ci);  // PyTorch (o, c, tap)
        const Scalar w = params(weight_offset + x);
        forward(packed_offset + (tap * ci + c) * co + o) = w;
        if (adjoint.extent(0) > 0) adjoint(packed_offset + ((26 - tap) * co + o) * ci + c) = w;
      });
}

enum class OpKind { conv, pool, upsample, output };

// One step of the network on value ids: conv reads `in` (and `skip`), writes `a` = act(conv(in)) and,
// with a skip, `sum` = a + skip; pool / upsample read `in` (upsample adds `skip`) and write `out`; output
// reads `in` and writes q.
struct Op {
  OpKind kind = OpKind::conv;
  int in = -1, a = -1, skip = -1, sum = -1, out = -1;
  int layer = -1;
  bool relu = false;
};

struct ValueInfo {
  int level = 0;  // 0: fine, 1: pooled
  int channels = 0;
};

}  // namespace

// --- The network ----------------------------------------------------------------------------------------

template <class Scalar>
struct DcdmNetwork<Scalar>::Impl {
  using Field = Act<Scalar>;

  DcdmArchitecture arch;
  comm::CartDecomposition fine, coarse;
  std::array<Extent3, 2> extent;
  Vector params;
  Vector packed, packed_adjoint;
  std::vector<std::int64_t> packed_offset;  // per conv
  std::vector<ValueInfo> values;
  std::vector<Op> ops;
  int input = -1;
  std::unique_ptr<comm::HaloExchange<Scalar>> halo_input;
  std::array<std::unique_ptr<comm::HaloExchange<Scalar>>, 2> halo;
  // Training: one field per value and per gradient; inference: fields shared by values whose lifetimes do
  // not overlap.
  std::vector<Field> stored, grads;
  std::vector<int> inference_slot;
  std::vector<Field> inference_fields;
  std::vector<char> ghosts_ok;
  std::array<Field, 2> dz;
  Vector partial;
  std::int64_t partial_blocks = 0;
  bool have_training_forward = false;

  int add_value(int level, int channels) {
    values.push_back({level, channels});
    return static_cast<int>(values.size()) - 1;
  }
  int add_conv(int in, bool relu, int skip) {
    Op op;
    op.kind = OpKind::conv;
    op.layer = static_cast<int>(packed_offset.size());
    op.in = in;
    op.relu = relu;
    const int level = values[in].level;
    op.a = add_value(level, arch.channels);
    if (skip >= 0) {
      op.skip = skip;
      op.sum = add_value(level, arch.channels);
    }
    const int ci = arch.conv_in(op.layer);
    packed_offset.push_back(packed_offset.empty() ? 0 : packed_offset.back());
    ops.push_back(op);
    (void)ci;
    return skip >= 0 ? op.sum : op.a;
  }

  void build_graph() {
    const int c = arch.channels;
    input = add_value(0, 1);
    // packed_offset[l] is filled in below from the layers' sizes.
    int x = add_conv(input, false, -1);
    int la = add_conv(x, true, -1);
    for (int p = 0; p < arch.fine_pairs_before; ++p) {
      const int lb = add_conv(la, true, -1);
      la = add_conv(lb, true, la);
    }
    const int lb = add_conv(la, true, -1);
    Op pool;
    pool.kind = OpKind::pool;
    pool.in = lb;
    pool.out = add_value(1, c);
    ops.push_back(pool);
    int a = pool.out;
    for (int p = 0; p < arch.coarse_pairs; ++p) {
      const int b = add_conv(a, true, -1);
      a = add_conv(b, true, a);
    }
    Op up;
    up.kind = OpKind::upsample;
    up.in = a;
    up.skip = lb;
    up.out = add_value(0, c);
    ops.push_back(up);
    int u = up.out;
    for (int p = 0; p < arch.fine_pairs_after; ++p) {
      const int v = add_conv(u, true, -1);
      u = add_conv(v, true, u);
    }
    Op output;
    output.kind = OpKind::output;
    output.in = u;
    ops.push_back(output);
    std::int64_t offset = 0;
    for (int l = 0; l < arch.conv_count(); ++l) {
      packed_offset[l] = offset;
      offset += 27LL * arch.conv_in(l) * c;
    }
  }

  // Inference: a value's field is free again after its last reader; fields are shared per (level, channels).
  // The pre-skip activation `a` of a conv with a skip is never stored (the kernel writes the sum only).
  void plan_inference_fields() {
    std::vector<int> last_use(values.size(), -1);
    for (int t = 0; t < static_cast<int>(ops.size()); ++t) {
      for (const int v : {ops[t].in, ops[t].skip})
        if (v >= 0) last_use[v] = t;
    }
    inference_slot.assign(values.size(), -1);
    std::map<std::pair<int, int>, std::vector<int>> free_slots;
    std::vector<std::pair<int, int>> slot_key;
    auto take = [&](int v) {
      const auto key = std::make_pair(values[v].level, values[v].channels);
      auto& pool = free_slots[key];
      if (!pool.empty()) {
        inference_slot[v] = pool.back();
        pool.pop_back();
      } else {
        inference_slot[v] = static_cast<int>(slot_key.size());
        slot_key.push_back(key);
      }
    };
    take(input);
    for (int t = 0; t < static_cast<int>(ops.size()); ++t) {
      const Op& op = ops[t];
      if (op.kind == OpKind::conv) {
        take(op.sum >= 0 ? op.sum : op.a);
      } else if (op.out >= 0) {
        take(op.out);
      }
      for (const int v : {op.in, op.skip}) {
        if (v >= 0 && last_use[v] == t && inference_slot[v] >= 0) {
          free_slots[std::make_pair(values[v].level, values[v].channels)].push_back(inference_slot[v]);
          inference_slot[v] = -inference_slot[v] - 2;  // released; keeps the slot for reading in op t
        }
      }
    }
    for (auto& s : inference_slot)
      if (s <= -2) s = -s - 2;
    inference_fields.clear();
    for (const auto& [level, channels] : slot_key) {
      inference_fields.push_back(
          comm::make_field<Scalar>(level == 0 ? fine : coarse, 1, channels, "skein::cnn::act"));
    }
  }

  Field value(int v, bool training) const {
    return training ? stored[v] : inference_fields[inference_slot[v]];
  }
  comm::HaloExchange<Scalar>& halo_for(int v) const {
    return values[v].channels == 1 ? *halo_input : *halo[values[v].level];
  }
  void ensure_ghosts(int v, bool training) {
    if (ghosts_ok[v]) return;
    halo_for(v).exchange(value(v, training));
    ghosts_ok[v] = 1;
  }

  void pack_all() {
    const bool need_adjoint = true;
    (void)need_adjoint;
    for (int l = 0; l < arch.conv_count(); ++l) {
      pack_weights(params, arch.conv_weight_offset(l), arch.conv_in(l), arch.channels, packed, packed_adjoint,
                   packed_offset[l]);
    }
  }

  void forward(const PoissonField& r, const PoissonField& q, bool training);
  void backward(const PoissonField& dq, const Vector& grad);
};

namespace {

template <class Scalar>
void load_input(const PoissonField& r, const Act<Scalar>& x, Extent3 e) {
  Kokkos::parallel_for(
      "skein::cnn::input", Kokkos::MDRangePolicy<Kokkos::Rank<3>>({1, 1, 1}, {e.n0 + 1, e.n1 + 1, e.n2 + 1}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        x(i, j, k, 0) = static_cast<Scalar>(r(i, j, k));
      });
}

// q = w . u + b per owned cell.
template <class Scalar>
void dense_output(const Act<Scalar>& u, const Kokkos::View<Scalar*>& params, std::int64_t w0, int channels,
                  const PoissonField& q, Extent3 e) {
  const std::int64_t b0 = w0 + channels;
  Kokkos::parallel_for(
      "skein::cnn::output", Kokkos::MDRangePolicy<Kokkos::Rank<3>>({1, 1, 1}, {e.n0 + 1, e.n1 + 1, e.n2 + 1}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        Scalar s = params(b0);
        for (int c = 0; c < channels; ++c) s += params(w0 + c) * u(i, j, k, c);
        q(i, j, k) = static_cast<double>(s);
      });
}

// coarse(I) = mean of the fine cells 2I + {0,1}^3 that exist in the global grid (Keras 'same' pooling:
// padding cells do not count). 2I is owned here; 2I + 1 may be an upper ghost.
template <class Scalar>
void pool_forward(const Act<Scalar>& fine, const Act<Scalar>& coarse, comm::Box3 fine_box,
                  comm::Box3 coarse_box, std::array<std::int64_t, 3> fine_global) {
  const int channels = static_cast<int>(fine.extent(3));
  const std::int64_t f0 = fine_box.offset[0], f1 = fine_box.offset[1], f2 = fine_box.offset[2];
  const std::int64_t c0 = coarse_box.offset[0], c1 = coarse_box.offset[1], c2 = coarse_box.offset[2];
  const std::int64_t g0 = fine_global[0], g1 = fine_global[1], g2 = fine_global[2];
  Kokkos::parallel_for(
      "skein::cnn::pool",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>(
          {1, 1, 1}, {coarse_box.extent[0] + 1, coarse_box.extent[1] + 1, coarse_box.extent[2] + 1}),
      KOKKOS_LAMBDA(const std::int64_t I, const std::int64_t J, const std::int64_t K) {
        const std::int64_t x0 = 2 * (c0 + I - 1), x1 = 2 * (c1 + J - 1), x2 = 2 * (c2 + K - 1);
        const int m0 = x0 + 1 < g0 ? 2 : 1, m1 = x1 + 1 < g1 ? 2 : 1, m2 = x2 + 1 < g2 ? 2 : 1;
        const Scalar scale = Scalar(1) / static_cast<Scalar>(m0 * m1 * m2);
        for (int c = 0; c < channels; ++c) {
          Scalar s = 0;
          for (int a = 0; a < m0; ++a)
            for (int b = 0; b < m1; ++b)
              for (int d = 0; d < m2; ++d) s += fine(x0 + a - f0 + 1, x1 + b - f1 + 1, x2 + d - f2 + 1, c);
          coarse(I, J, K, c) = s * scale;
        }
      });
}

// fine_grad(i) += coarse_grad(parent(i)) / (cells averaged into the parent); the parent may be a lower ghost.
template <class Scalar>
void pool_backward(const Act<Scalar>& fine_grad, const Act<Scalar>& coarse_grad, comm::Box3 fine_box,
                   comm::Box3 coarse_box, std::array<std::int64_t, 3> fine_global) {
  const int channels = static_cast<int>(fine_grad.extent(3));
  const std::int64_t f0 = fine_box.offset[0], f1 = fine_box.offset[1], f2 = fine_box.offset[2];
  const std::int64_t c0 = coarse_box.offset[0], c1 = coarse_box.offset[1], c2 = coarse_box.offset[2];
  const std::int64_t g0 = fine_global[0], g1 = fine_global[1], g2 = fine_global[2];
  Kokkos::parallel_for(
      "skein::cnn::pool_backward",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>(
          {1, 1, 1}, {fine_box.extent[0] + 1, fine_box.extent[1] + 1, fine_box.extent[2] + 1}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        const std::int64_t P0 = (f0 + i - 1) / 2, P1 = (f1 + j - 1) / 2, P2 = (f2 + k - 1) / 2;
        const int m = (2 * P0 + 1 < g0 ? 2 : 1) * (2 * P1 + 1 < g1 ? 2 : 1) * (2 * P2 + 1 < g2 ? 2 : 1);
        const Scalar scale = Scalar(1) / static_cast<Scalar>(m);
        for (int c = 0; c < channels; ++c)
          fine_grad(i, j, k, c) += coarse_grad(P0 - c0 + 1, P1 - c1 + 1, P2 - c2 + 1, c) * scale;
      });
}

// out(i) = coarse(parent(i)) + skip(i) (nearest upsampling, cropped to the fine grid).
template <class Scalar>
void upsample_forward(const Act<Scalar>& coarse, const Act<Scalar>& skip, const Act<Scalar>& out,
                      comm::Box3 fine_box, comm::Box3 coarse_box) {
  const int channels = static_cast<int>(out.extent(3));
  const std::int64_t f0 = fine_box.offset[0], f1 = fine_box.offset[1], f2 = fine_box.offset[2];
  const std::int64_t c0 = coarse_box.offset[0], c1 = coarse_box.offset[1], c2 = coarse_box.offset[2];
  Kokkos::parallel_for(
      "skein::cnn::upsample",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>(
          {1, 1, 1}, {fine_box.extent[0] + 1, fine_box.extent[1] + 1, fine_box.extent[2] + 1}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        const std::int64_t P0 = (f0 + i - 1) / 2 - c0 + 1, P1 = (f1 + j - 1) / 2 - c1 + 1,
                           P2 = (f2 + k - 1) / 2 - c2 + 1;
        for (int c = 0; c < channels; ++c) out(i, j, k, c) = coarse(P0, P1, P2, c) + skip(i, j, k, c);
      });
}

// coarse_grad(I) += sum of out_grad over I's fine children in the grid (the upper ones may be ghosts).
template <class Scalar>
void upsample_backward(const Act<Scalar>& coarse_grad, const Act<Scalar>& out_grad, comm::Box3 fine_box,
                       comm::Box3 coarse_box, std::array<std::int64_t, 3> fine_global) {
  const int channels = static_cast<int>(out_grad.extent(3));
  const std::int64_t f0 = fine_box.offset[0], f1 = fine_box.offset[1], f2 = fine_box.offset[2];
  const std::int64_t c0 = coarse_box.offset[0], c1 = coarse_box.offset[1], c2 = coarse_box.offset[2];
  const std::int64_t g0 = fine_global[0], g1 = fine_global[1], g2 = fine_global[2];
  Kokkos::parallel_for(
      "skein::cnn::upsample_backward",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>(
          {1, 1, 1}, {coarse_box.extent[0] + 1, coarse_box.extent[1] + 1, coarse_box.extent[2] + 1}),
      KOKKOS_LAMBDA(const std::int64_t I, const std::int64_t J, const std::int64_t K) {
        const std::int64_t x0 = 2 * (c0 + I - 1), x1 = 2 * (c1 + J - 1), x2 = 2 * (c2 + K - 1);
        const int m0 = x0 + 1 < g0 ? 2 : 1, m1 = x1 + 1 < g1 ? 2 : 1, m2 = x2 + 1 < g2 ? 2 : 1;
        for (int c = 0; c < channels; ++c) {
          Scalar s = 0;
          for (int a = 0; a < m0; ++a)
            for (int b = 0; b < m1; ++b)
              for (int d = 0; d < m2; ++d)
                s += out_grad(x0 + a - f0 + 1, x1 + b - f1 + 1, x2 + d - f2 + 1, c);
          coarse_grad(I, J, K, c) += s;
        }
      });
}

// dz = g * relu'(a) (or g), and skip_grad += g, on owned cells.
template <class Scalar>
void conv_output_gradient(const Act<Scalar>& g, const Act<Scalar>& a, bool relu, const Act<Scalar>& dz,
                          const Act<Scalar>& skip_grad, bool has_skip, Extent3 e) {
  const int channels = static_cast<int>(g.extent(3));
  Kokkos::parallel_for(
      "skein::cnn::conv_output_gradient",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>({1, 1, 1}, {e.n0 + 1, e.n1 + 1, e.n2 + 1}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        for (int c = 0; c < channels; ++c) {
          const Scalar gv = g(i, j, k, c);
          dz(i, j, k, c) = (!relu || a(i, j, k, c) > 0) ? gv : Scalar(0);
          if (has_skip) skip_grad(i, j, k, c) += gv;
        }
      });
}

// to += from on owned cells.
template <class Scalar>
void add_owned(const Act<Scalar>& from, const Act<Scalar>& to, Extent3 e) {
  const int channels = static_cast<int>(from.extent(3));
  Kokkos::parallel_for(
      "skein::cnn::add_owned",
      Kokkos::MDRangePolicy<Kokkos::Rank<3>>({1, 1, 1}, {e.n0 + 1, e.n1 + 1, e.n2 + 1}),
      KOKKOS_LAMBDA(const std::int64_t i, const std::int64_t j, const std::int64_t k) {
        for (int c = 0; c < channels; ++c) to(i, j, k, c) += from(i, j, k, c);
      });
}

// grad[flat(e)] += sum over blocks of partial[b][e], e in the kernel's [tap][in][out] + bias order.
template <class Scalar>
void reduce_conv_partials(const Kokkos::View<Scalar*>& partial, std::int64_t blocks, int ci, int co,
                          std::int64_t weight_offset, std::int64_t bias_offset,
                          const Kokkos::View<Scalar*>& grad) {
  const std::int64_t weights = 27LL * ci * co, size = weights + co;
  Kokkos::parallel_for(
      "skein::cnn::reduce_weight_gradient", Kokkos::RangePolicy<>(0, size),
      KOKKOS_LAMBDA(const std::int64_t x) {
        Scalar s = 0;
        for (std::int64_t b = 0; b < blocks; ++b) s += partial(b * size + x);
        if (x < weights) {
          const std::int64_t tap = x / (static_cast<std::int64_t>(ci) * co), c = (x / co) % ci, o = x % co;
          grad(weight_offset + (o * ci + c) * 27 + tap) += s;
        } else {
          grad(bias_offset + (x - weights)) += s;
        }
      });
}

// The output layer's backward: u_grad(i, c) += w[c] dq(i); partial[b] = (sum u(i, c) dq(i) over c, sum dq).
template <class Scalar>
void dense_backward(const Act<Scalar>& u, const Act<Scalar>& u_grad, const PoissonField& dq,
                    const Kokkos::View<Scalar*>& params, std::int64_t w0,
                    const Kokkos::View<Scalar*>& partial, std::int64_t blocks,
                    const Kokkos::View<Scalar*>& grad, Extent3 e) {
  const int channels = static_cast<int>(u.extent(3));
  const std::int64_t n1 = e.n1, n2 = e.n2, rows = e.n0 * e.n1, size = channels + 1;
  Kokkos::parallel_for(
      "skein::cnn::output_backward", Kokkos::RangePolicy<>(0, blocks), KOKKOS_LAMBDA(const std::int64_t b) {
        for (std::int64_t x = 0; x < size; ++x) partial(b * size + x) = 0;
        for (std::int64_t r = rows * b / blocks; r < rows * (b + 1) / blocks; ++r) {
          const std::int64_t i = r / n1 + 1, j = r % n1 + 1;
          for (std::int64_t k = 1; k <= n2; ++k) {
            const Scalar d = static_cast<Scalar>(dq(i, j, k));
            for (int c = 0; c < channels; ++c) {
              u_grad(i, j, k, c) += params(w0 + c) * d;
              partial(b * size + c) += u(i, j, k, c) * d;
            }
            partial(b * size + channels) += d;
          }
        }
      });
  Kokkos::parallel_for(
      "skein::cnn::output_backward_reduce", Kokkos::RangePolicy<>(0, size),
      KOKKOS_LAMBDA(const std::int64_t x) {
        Scalar s = 0;
        for (std::int64_t b = 0; b < blocks; ++b) s += partial(b * size + x);
        grad(w0 + x) += s;  // the bias follows the C weights
      });
}

}  // namespace

template <class Scalar>
void DcdmNetwork<Scalar>::Impl::forward(const PoissonField& r, const PoissonField& q, bool training) {
  const auto e = extent[0];
  for (int a = 0; a < 3; ++a) {
    if (static_cast<std::int64_t>(r.extent(a)) != fine.owned().extent[a] + 2 ||
        static_cast<std::int64_t>(q.extent(a)) != fine.owned().extent[a] + 2) {
      throw engine::InternalError("DcdmNetwork: r or q does not match the decomposition");
    }
  }
  if (training && stored.empty()) {
    for (std::size_t v = 0; v < values.size(); ++v) {
      const auto& d = values[v].level == 0 ? fine : coarse;
      stored.push_back(comm::make_field<Scalar>(d, 1, values[v].channels, "skein::cnn::value"));
      grads.push_back(v == static_cast<std::size_t>(input)
                          ? Field()
                          : comm::make_field<Scalar>(d, 1, values[v].channels, "skein::cnn::gradient"));
    }
    dz[0] = comm::make_field<Scalar>(fine, 1, arch.channels, "skein::cnn::dz");
    dz[1] = comm::make_field<Scalar>(coarse, 1, arch.channels, "skein::cnn::dz_coarse");
  }
  if (!training && inference_fields.empty()) plan_inference_fields();
  pack_all();
  ghosts_ok.assign(values.size(), 0);
  load_input<Scalar>(r, value(input, training), e);
  const int c = arch.channels;
  for (const Op& op : ops) {
    switch (op.kind) {
      case OpKind::conv: {
        ensure_ghosts(op.in, training);
        const int level = values[op.in].level;
        const bool store_a = training || op.skip < 0;
        Scalar* a_out = store_a ? value(op.a, training).data() : nullptr;
        const Scalar* skip = op.skip >= 0 ? value(op.skip, training).data() : nullptr;
        Scalar* sum = op.sum >= 0 ? value(op.sum, training).data() : nullptr;
        conv_dispatch<Scalar>(value(op.in, training).data(), values[op.in].channels,
                              packed.data() + packed_offset[op.layer],
                              params.data() + arch.conv_bias_offset(op.layer), c, extent[level], op.relu,
                              false, a_out, skip, sum);
        break;
      }
      case OpKind::pool:
        ensure_ghosts(op.in, training);
        pool_forward<Scalar>(value(op.in, training), value(op.out, training), fine.owned(), coarse.owned(),
                             fine.global_extent());
        break;
      case OpKind::upsample:
        ensure_ghosts(op.in, training);
        upsample_forward<Scalar>(value(op.in, training), value(op.skip, training), value(op.out, training),
                                 fine.owned(), coarse.owned());
        break;
      case OpKind::output:
        dense_output<Scalar>(value(op.in, training), params, arch.output_weight_offset(), c, q, e);
        break;
    }
  }
  Kokkos::fence();
  have_training_forward = training;
}

template <class Scalar>
void DcdmNetwork<Scalar>::Impl::backward(const PoissonField& dq, const Vector& grad) {
  if (!have_training_forward)
    throw engine::InternalError("DcdmNetwork::backward without forward_for_training");
  if (grad.extent(0) != static_cast<std::size_t>(arch.parameter_count())) {
    throw engine::InternalError("DcdmNetwork::backward: gradient vector has the wrong size");
  }
  for (auto& g : grads)
    if (g.data() != nullptr) Kokkos::deep_copy(g, Scalar(0));
  const int c = arch.channels;
  for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
    const Op& op = *it;
    switch (op.kind) {
      case OpKind::output: {
        const std::int64_t blocks =
            std::min<std::int64_t>(partial_blocks, std::max<std::int64_t>(1, extent[0].n0 * extent[0].n1));
        dense_backward<Scalar>(stored[op.in], grads[op.in], dq, params, arch.output_weight_offset(), partial,
                               blocks, grad, extent[0]);
        break;
      }
      case OpKind::conv: {
        const int level = values[op.a].level;
        const Extent3 e = extent[level];
        const Field g = op.sum >= 0 ? grads[op.sum] : grads[op.a];
        conv_output_gradient<Scalar>(g, stored[op.a], op.relu, dz[level],
                                     op.skip >= 0 ? grads[op.skip] : Field(), op.skip >= 0, e);
        halo[level]->exchange(dz[level]);
        const int ci = values[op.in].channels;
        if (op.in != input) {
          conv_dispatch<Scalar>(dz[level].data(), c, packed_adjoint.data() + packed_offset[op.layer], nullptr,
                                ci, e, false, true, grads[op.in].data(), nullptr, nullptr);
        }
        if (e.cells() > 0) {
          const std::int64_t blocks = std::min<std::int64_t>(partial_blocks, e.n0 * e.n1);
          weight_partials_dispatch<Scalar>(stored[op.in].data(), ci, dz[level].data(), c, e, partial.data(),
                                           blocks);
          reduce_conv_partials<Scalar>(partial, blocks, ci, c, arch.conv_weight_offset(op.layer),
                                       arch.conv_bias_offset(op.layer), grad);
        }
        break;
      }
      case OpKind::upsample: {
        add_owned<Scalar>(grads[op.out], grads[op.skip], extent[0]);
        halo[0]->exchange(grads[op.out]);
        upsample_backward<Scalar>(grads[op.in], grads[op.out], fine.owned(), coarse.owned(),
                                  fine.global_extent());
        break;
      }
      case OpKind::pool:
        halo[1]->exchange(grads[op.out]);
        pool_backward<Scalar>(grads[op.in], grads[op.out], fine.owned(), coarse.owned(),
                              fine.global_extent());
        break;
    }
  }
  Kokkos::fence();
}

template <class Scalar>
DcdmNetwork<Scalar>::DcdmNetwork(DcdmArchitecture architecture, const comm::CartDecomposition& decomposition)
    : impl_(std::make_unique<Impl>(Impl{architecture, decomposition, decomposition.coarsened()})) {
  Impl& m = *impl_;
  decomposition.comm().agree([&] {
    try {
      architecture.validate();
    } catch (const std::invalid_argument& e) {
      throw engine::UsageError(std::string("DCDM network: ") + e.what());
    }
    if (m.coarse.min_owned_extent() < 1) {
      const auto g = decomposition.global_extent();
      throw engine::UsageError(
          "DCDM network: grid " + std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" +
          std::to_string(g[2]) +
          " over this decomposition leaves a rank without pooled cells (a one-cell block at "
          "an odd offset); use fewer ranks");
    }
  });
  m.extent = {extent_of(m.fine.owned()), extent_of(m.coarse.owned())};
  m.params = Vector("skein::cnn::parameters", static_cast<std::size_t>(architecture.parameter_count()));
  m.build_graph();
  std::int64_t packed_size = 0;
  for (int l = 0; l < architecture.conv_count(); ++l)
    packed_size += 27LL * architecture.conv_in(l) * architecture.channels;
  m.packed = Vector("skein::cnn::packed", static_cast<std::size_t>(packed_size));
  m.packed_adjoint = Vector("skein::cnn::packed_adjoint", static_cast<std::size_t>(packed_size));
  m.halo_input = std::make_unique<comm::HaloExchange<Scalar>>(m.fine, 1, true, 1);
  m.halo[0] = std::make_unique<comm::HaloExchange<Scalar>>(m.fine, 1, true, architecture.channels);
  m.halo[1] = std::make_unique<comm::HaloExchange<Scalar>>(m.coarse, 1, true, architecture.channels);
  m.partial_blocks = std::max<std::int64_t>(
      1, std::min<std::int64_t>(64, 8 * Kokkos::DefaultExecutionSpace().concurrency()));
  const std::int64_t c = architecture.channels;
  m.partial = Vector("skein::cnn::partial", static_cast<std::size_t>(m.partial_blocks * (27 * c * c + c)));
}

template <class Scalar>
DcdmNetwork<Scalar>::~DcdmNetwork() = default;
template <class Scalar>
DcdmNetwork<Scalar>::DcdmNetwork(DcdmNetwork&&) noexcept = default;
template <class Scalar>
DcdmNetwork<Scalar>& DcdmNetwork<Scalar>::operator=(DcdmNetwork&&) noexcept = default;

template <class Scalar>
const DcdmArchitecture& DcdmNetwork<Scalar>::architecture() const {
  return impl_->arch;
}
template <class Scalar>
const comm::CartDecomposition& DcdmNetwork<Scalar>::decomposition() const {
  return impl_->fine;
}
template <class Scalar>
typename DcdmNetwork<Scalar>::Vector DcdmNetwork<Scalar>::parameters() const {
  return impl_->params;
}

template <class Scalar>
void DcdmNetwork<Scalar>::initialize(std::uint64_t seed) {
  const DcdmArchitecture& a = impl_->arch;
  auto host = Kokkos::create_mirror_view(impl_->params);
  Kokkos::deep_copy(host, Scalar(0));
  auto glorot = [&](std::int64_t begin, std::int64_t count, double fan_in, double fan_out) {
    const double limit = std::sqrt(6.0 / (fan_in + fan_out));
    for (std::int64_t x = begin; x < begin + count; ++x) {
      const double u = engine::uniform_open01(seed, kInitializationStream, static_cast<std::uint64_t>(x));
      host(x) = static_cast<Scalar>((2.0 * u - 1.0) * limit);
    }
  };
  for (int l = 0; l < a.conv_count(); ++l) {
    glorot(a.conv_weight_offset(l), 27LL * a.conv_in(l) * a.channels, 27.0 * a.conv_in(l), 27.0 * a.channels);
  }
  glorot(a.output_weight_offset(), a.channels, a.channels, 1.0);
  Kokkos::deep_copy(impl_->params, host);
}

template <class Scalar>
void DcdmNetwork<Scalar>::infer(const PoissonField& r, const PoissonField& q) {
  impl_->forward(r, q, false);
}
template <class Scalar>
void DcdmNetwork<Scalar>::forward_for_training(const PoissonField& r, const PoissonField& q) {
  impl_->forward(r, q, true);
}
template <class Scalar>
void DcdmNetwork<Scalar>::backward(const PoissonField& dloss_dq, const Vector& grad) {
  impl_->backward(dloss_dq, grad);
}

template <class Scalar>
void conv3x3x3(const Kokkos::View<const Scalar****, Kokkos::LayoutRight>& in,
               const Kokkos::View<const Scalar*>& weights, const Kokkos::View<const Scalar*>& bias, bool relu,
               const Kokkos::View<Scalar****, Kokkos::LayoutRight>& out) {
  const int ci = static_cast<int>(in.extent(3)), co = static_cast<int>(out.extent(3));
  const Extent3 e{static_cast<std::int64_t>(in.extent(0)) - 2, static_cast<std::int64_t>(in.extent(1)) - 2,
                  static_cast<std::int64_t>(in.extent(2)) - 2};
  Kokkos::View<Scalar*> flat("skein::cnn::weights", weights.extent(0));
  Kokkos::deep_copy(flat, weights);
  Kokkos::View<Scalar*> packed("skein::cnn::packed", weights.extent(0));
  pack_weights<Scalar>(flat, 0, ci, co, packed, Kokkos::View<Scalar*>(), 0);
  conv_dispatch<Scalar>(in.data(), ci, packed.data(), bias.data(), co, e, relu, false, out.data(), nullptr,
                        nullptr);
  Kokkos::fence();
}

template class DcdmNetwork<float>;
template class DcdmNetwork<double>;
template void conv3x3x3<float>(const Kokkos::View<const float****, Kokkos::LayoutRight>&,
                               const Kokkos::View<const float*>&, const Kokkos::View<const float*>&, bool,
                               const Kokkos::View<float****, Kokkos::LayoutRight>&);
template void conv3x3x3<double>(const Kokkos::View<const double****, Kokkos::LayoutRight>&,
                                const Kokkos::View<const double*>&, const Kokkos::View<const double*>&, bool,
                                const Kokkos::View<double****, Kokkos::LayoutRight>&);

}  // namespace skein::solvers::cnn
