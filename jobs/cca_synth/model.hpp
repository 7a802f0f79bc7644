// The planted-signal model of `cca-synth`: every value a pure function of (seed, stream, global index), so
// the files are the same at any rank count and tests can recompute any genotype or Y value.
#pragma once

#include "engine/random.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace skein::cca_synth {

// The model (k components, q Y features, individuals i, SNPs j):
//   latent     z_ic ~ N(0, 1), independent (c < k);
//   SNP j      MAF m_j ~ U(maf_min, maf_max); A1 (.bim column 5, "A") is the minor allele, so the counted
//              A2 allele (io/plink.hpp) has frequency f_j = 1 - m_j. With probability signal_fraction the
//              SNP carries signal: component c_j uniform in 0..k-1, loading beta_j = +-effect min(f_j,
//              1-f_j)/6 (random sign); otherwise beta_j = 0;
//   genotype   g_ij ~ Binomial(2, pi_ij), pi_ij = clip(f_j + beta_j z_i,c_j, 0, 1) (|beta| <= min(f,1-f)/6:
//              clipping needs |z| > 6, probability 2e-9, ignored below); then, independently, missing with
//              probability missing_rate (mean-imputed by the reader);
//   Y          y_i = R v_i, R a q x q matrix of N(0, 1/q) entries, v_ic = a_c z_ic + sqrt(1 - a_c^2) e_ic for
//              c < k and v_ic = e_ic for c >= k, e ~ N(0, 1) independent.
// Population canonical correlations. Given z, the SNPs are independent; SNPs of component c depend on z_c
// alone, so X splits into independent groups and the canonical pairs are (best linear predictor of z_c from
// X, v_c), in order of correlation: rho_c = a_c sqrt(R2_c). With v_j = 2 beta_j (cov of g_j and z_c),
// D_j = 2 f_j (1 - f_j) - 2 beta_j^2 (the mean conditional variance) and mean imputation of a fraction m of
// calls: tau_c = sum over SNPs of c of v_j^2 / (D_j + m v_j^2) and R2_c = (1 - m) tau_c / (1 + (1 - m)
// tau_c). R is invertible (almost surely) and CCA is invariant to it and to per-column scaling, so the
// canonical correlations of (X, Y) are the rho_c, which the generator plants: a_c = rho_c / sqrt(R2_c)
// (refused when above 1: the genotypes carry too little of z_c). These are population values: the sample CCA
// of n samples overfits when p is not small next to n (PLS, the exact X^T Y route, does not).
enum class SynthStream : std::uint32_t {
  snp_maf = 0x5101,
  snp_signal,
  snp_component,
  snp_sign,
  latent,
  genotype,
  y_noise,
  mixing,
  roles,
  y_order,
};

// What kernels need of the settings (trivially copyable).
struct ModelParameters {
  std::uint64_t seed = 0;
  std::int64_t components = 1;
  double signal_fraction = 0, effect = 1, maf_min = 0.05, maf_max = 0.5, missing_rate = 0;
};

struct SnpModel {
  double a2_frequency = 0.5;
  std::int64_t component = -1;  // -1: no signal
  double beta = 0;
};

KOKKOS_INLINE_FUNCTION SnpModel snp_model(const ModelParameters& m, std::uint64_t snp) {
  SnpModel s;
  const double maf =
      m.maf_min + (m.maf_max - m.maf_min) * engine::uniform_open01(m.seed, SynthStream::snp_maf, snp);
  s.a2_frequency = 1.0 - maf;
  if (engine::uniform_open01(m.seed, SynthStream::snp_signal, snp) < m.signal_fraction) {
    s.component = static_cast<std::int64_t>(engine::random_bits(m.seed, SynthStream::snp_component, snp) %
                                            static_cast<std::uint64_t>(m.components));
    const double sign = (engine::random_bits(m.seed, SynthStream::snp_sign, snp) >> 63) ? -1.0 : 1.0;
    s.beta = sign * m.effect * (maf < 0.5 ? maf : 1.0 - maf) / 6.0;
  }
  return s;
}

// z_ic, by global individual index.
KOKKOS_INLINE_FUNCTION double latent(const ModelParameters& m, std::uint64_t individual, std::int64_t c) {
  return engine::standard_normal(
      m.seed, SynthStream::latent,
      individual * static_cast<std::uint64_t>(m.components) + static_cast<std::uint64_t>(c));
}

// The .bed code (io::plink: 0 hom A1, 1 missing, 2 het, 3 hom A2) of .fam position `sample` for SNP `snp`,
// `z` the latent of the SNP's component for that sample (ignored without signal). One Philox draw serves a
// pair of samples (2 x 2 words: missing, genotype), half the draws of one call per genotype.
KOKKOS_INLINE_FUNCTION unsigned genotype_code(const ModelParameters& m, const SnpModel& s, std::uint64_t snp,
                                              std::uint64_t fam_samples, std::uint64_t sample, double z) {
  const std::uint64_t pairs = (fam_samples + 1) / 2;
  const engine::Philox4x32 draw =
      engine::detail::philox_draw(m.seed, SynthStream::genotype, snp * pairs + sample / 2);
  const unsigned word = 2 * static_cast<unsigned>(sample & 1);
  constexpr double to01 = 1.0 / 4294967296.0;
  const bool missing = (static_cast<double>(draw.v[word]) + 0.5) * to01 < m.missing_rate;
  double pi = s.a2_frequency + s.beta * z;
  pi = pi < 0 ? 0 : pi;
  pi = pi > 1 ? 1 : pi;
  const double u = (static_cast<double>(draw.v[word + 1]) + 0.5) * to01;
  const double p0 = (1 - pi) * (1 - pi), p1 = p0 + 2 * pi * (1 - pi);
  // Branch-free (the outcomes are random, so branches would mispredict): hom A1 0, het 2, hom A2 3.
  const unsigned code = 2u * static_cast<unsigned>(u >= p0) + static_cast<unsigned>(u >= p1);
  return missing ? 1u : code;
}

// Mixing matrix entry R_fc.
KOKKOS_INLINE_FUNCTION double mixing(const ModelParameters& m, std::int64_t q, std::int64_t f,
                                     std::int64_t c) {
  return engine::standard_normal(m.seed, SynthStream::mixing, static_cast<std::uint64_t>(f * q + c)) /
         engine::portable_sqrt(static_cast<double>(q));
}

// v_ic of individual i (the unmixed Y channels), `a` the k signal weights.
inline double channel(const ModelParameters& m, const std::vector<double>& a, std::int64_t q,
                      std::uint64_t individual, std::int64_t c) {
  const double e =
      engine::standard_normal(m.seed, SynthStream::y_noise,
                              individual * static_cast<std::uint64_t>(q) + static_cast<std::uint64_t>(c));
  if (c >= m.components) return e;
  const double ac = a[static_cast<std::size_t>(c)];
  return ac * latent(m, individual, c) + std::sqrt(1.0 - ac * ac) * e;
}

// Per component: the share R2_c of z_c the (mean-imputed) genotypes explain, summed over `snps` SNPs.
std::vector<double> genetic_r2(const ModelParameters& m, std::uint64_t snps);

// Who is where: individuals 0..samples+2u-1 (u = unmatched); a seeded shuffle picks `samples` in both files,
// u only in the .fam and u only in Y. The .fam lists its individuals by index; Y by index too, or in a
// seeded random order with shuffle_y. Ids are "id<individual>".
struct Roster {
  std::vector<std::uint64_t> fam;  // individual of each .fam line
  std::vector<std::uint64_t> y;    // individual of each Y row
};
Roster make_roster(std::uint64_t seed, std::uint64_t samples, std::uint64_t unmatched, bool shuffle_y);
inline std::string sample_id(std::uint64_t individual) {
  return "id" + std::to_string(individual);
}

}  // namespace skein::cca_synth
