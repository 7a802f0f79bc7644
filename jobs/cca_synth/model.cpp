#include "jobs/cca_synth/model.hpp"

#include <algorithm>
#include <numeric>

namespace skein::cca_synth {

std::vector<double> genetic_r2(const ModelParameters& m, std::uint64_t snps) {
  std::vector<double> tau(static_cast<std::size_t>(m.components), 0.0);
  for (std::uint64_t j = 0; j < snps; ++j) {
    const SnpModel s = snp_model(m, j);
    if (s.component < 0) continue;
    const double f = s.a2_frequency, v = 2 * s.beta;
    const double conditional = 2 * f * (1 - f) - 2 * s.beta * s.beta;
    tau[static_cast<std::size_t>(s.component)] += v * v / (conditional + m.missing_rate * v * v);
  }
  std::vector<double> r2(tau.size());
  for (std::size_t c = 0; c < tau.size(); ++c) {
    const double t = (1 - m.missing_rate) * tau[c];
    r2[c] = t / (1 + t);
  }
  return r2;
}

Roster make_roster(std::uint64_t seed, std::uint64_t samples, std::uint64_t unmatched, bool shuffle_y) {
  const std::uint64_t total = samples + 2 * unmatched;
  std::vector<std::uint64_t> order(total);
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  const auto by_key = [seed](SynthStream stream) {
    return [seed, stream](std::uint64_t a, std::uint64_t b) {
      const std::uint64_t ka = engine::random_bits(seed, stream, a),
                          kb = engine::random_bits(seed, stream, b);
      return ka != kb ? ka < kb : a < b;
    };
  };
  std::sort(order.begin(), order.end(), by_key(SynthStream::roles));
  Roster roster;
  // order[0, samples): in both; [samples, samples + u): .fam only; the rest: Y only.
  roster.fam.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(samples + unmatched));
  roster.y.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(samples));
  roster.y.insert(roster.y.end(), order.begin() + static_cast<std::ptrdiff_t>(samples + unmatched),
                  order.end());
  std::sort(roster.fam.begin(), roster.fam.end());
  if (shuffle_y) {
    std::sort(roster.y.begin(), roster.y.end(), by_key(SynthStream::y_order));
  } else {
    std::sort(roster.y.begin(), roster.y.end());
  }
  return roster;
}

}  // namespace skein::cca_synth
