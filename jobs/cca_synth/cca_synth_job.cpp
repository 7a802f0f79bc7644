#include "jobs/cca_synth/cca_synth_job.hpp"

#include "comm/block_partition.hpp"
#include "engine/log.hpp"
#include "io/atomic_output.hpp"
#include "io/hdf5.hpp"
#include "io/plink.hpp"
#include "io/text_output.hpp"
#include "jobs/run_attributes.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace skein::cca_synth {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The latents of each .fam line's individual (fam_samples x k).
struct FamLatents {
  ModelParameters model;
  Kokkos::View<const std::uint64_t*> individual;
  Kokkos::View<double**, Kokkos::LayoutRight> z;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t s) const {
    for (std::int64_t c = 0; c < model.components; ++c) z(s, c) = latent(model, individual(s), c);
  }
};

// The packed .bed records of SNPs first .. first + count - 1, one SNP per work item.
struct GenerateRecords {
  ModelParameters model;
  Kokkos::View<const double**, Kokkos::LayoutRight> z;
  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> records;
  std::uint64_t first, fam_samples;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t jj) const {
    const std::uint64_t snp = first + static_cast<std::uint64_t>(jj);
    const SnpModel s = snp_model(model, snp);
    const std::uint64_t bytes = (fam_samples + 3) / 4;
    for (std::uint64_t i = 0; i < bytes; ++i) {
      unsigned byte = 0;
      for (unsigned l = 0; l < 4; ++l) {
        const std::uint64_t sample = 4 * i + l;
        if (sample >= fam_samples) break;
        const double zc = s.component >= 0 ? z(sample, s.component) : 0.0;
        byte |= genotype_code(model, s, snp, fam_samples, sample, zc) << (2 * l);
      }
      records(jj, i) = static_cast<std::uint8_t>(byte);
    }
  }
};

std::string model_text(const Settings& s) {
  return "z ~ N(0, I_k); SNP j: MAF m_j ~ U(maf_min, maf_max), A1 minor, A2 frequency f_j = 1 - m_j; with "
         "probability signal_fraction it loads on latent c_j ~ U{0..k-1} with beta_j = +-effect min(f_j, "
         "1-f_j)/6; "
         "g_ij ~ Binomial(2, clip(f_j + beta_j z_i,c_j, 0, 1)) counting A2, missing with probability "
         "missing_rate; "
         "y_i = R v_i, R_fc ~ N(0, 1/q), v_ic = a_c z_ic + sqrt(1 - a_c^2) e_ic (c < k), e_ic (c >= k), e ~ "
         "N(0, 1); "
         "population canonical correlations rho_c = a_c sqrt(R2_c), R2_c = (1-m) tau_c / (1 + (1-m) tau_c), "
         "tau_c = sum_j (2 beta_j)^2 / (2 f_j (1-f_j) - 2 beta_j^2 + m (2 beta_j)^2) over c's SNPs, m = "
         "missing_rate (jobs/cca_synth/model.hpp). k = " +
         std::to_string(s.model.components) + ", q = " + std::to_string(s.y_features);
}

class CcaSynthJob final : public engine::Job {
 public:
  CcaSynthJob(const jobs::JobEnv& env, Settings settings)
      : env_(env), comm_(env.comm), settings_(std::move(settings)) {}

  void load() override {
    roster_ = make_roster(settings_.model.seed, settings_.samples, settings_.unmatched, settings_.shuffle_y);
  }
  // Everything is written in finalize(): a run is one streaming pass; an interrupted one starts again.
  bool step() override { return true; }
  void finalize() override;
  void save_state(engine::StateWriter&) const override {}
  void restore_state(engine::StateReader&) override {}
  std::uint64_t seed() const override { return settings_.model.seed; }

 private:
  void write_bed(const std::string& path);
  std::string bim_text() const;
  std::string fam_text() const;
  void write_y(const std::string& path);

  const jobs::JobEnv& env_;
  const comm::Communicator& comm_;
  Settings settings_;
  Roster roster_;
};

void CcaSynthJob::write_bed(const std::string& path) {
  const std::uint64_t fam_samples = roster_.fam.size();
  const std::int64_t k = settings_.model.components;
  Kokkos::View<std::uint64_t*> individual("cca_synth::individual", fam_samples);
  {
    auto host = Kokkos::create_mirror_view(individual);
    for (std::uint64_t s = 0; s < fam_samples; ++s) host(s) = roster_.fam[s];
    Kokkos::deep_copy(individual, host);
  }
  Kokkos::View<double**, Kokkos::LayoutRight> z("cca_synth::z", fam_samples, k);
  Kokkos::parallel_for("skein::cca_synth::latents",
                       Kokkos::RangePolicy<>(0, static_cast<std::int64_t>(fam_samples)),
                       FamLatents{settings_.model, individual, z});

  const std::uint64_t record = io::plink::record_bytes(fam_samples);
  const auto mine = comm::BlockPartition(settings_.snps, comm_.size()).range(comm_.rank());
  // Chunks of about 32 MB: streaming, never the rank's whole share in memory.
  const std::uint64_t chunk = std::max<std::uint64_t>(1, (std::uint64_t{32} << 20) / record);
  Kokkos::View<std::uint8_t**, Kokkos::LayoutRight> records(
      Kokkos::view_alloc(Kokkos::WithoutInitializing, "cca_synth::records"),
      std::min(chunk, std::max<std::uint64_t>(mine.size(), 1)), record);
  auto records_host = Kokkos::create_mirror_view(records);
  io::PlinkBedWriter writer(comm_, path, fam_samples, settings_.snps);
  engine::Progress progress("cca-synth .bed", static_cast<double>(mine.size()), "SNPs");
  for (std::uint64_t first = mine.begin; first < mine.end; first += chunk) {
    const std::uint64_t count = std::min(chunk, mine.end - first);
    Kokkos::parallel_for("skein::cca_synth::records",
                         Kokkos::RangePolicy<>(0, static_cast<std::int64_t>(count)),
                         GenerateRecords{settings_.model, z, records, first, fam_samples});
    Kokkos::deep_copy(records_host, records);
    writer.write_records(first, records_host.data(), count);
    progress.set_done(static_cast<double>(first + count - mine.begin));
  }
  writer.close();
  progress.finish(static_cast<double>(settings_.snps), comm_.size());
}

std::string CcaSynthJob::bim_text() const {
  // Each rank formats its own SNPs' lines; their concatenation in rank order is the .bim.
  const auto mine = comm::BlockPartition(settings_.snps, comm_.size()).range(comm_.rank());
  std::string text;
  text.reserve(mine.size() * 32);
  char line[96];
  for (std::uint64_t j = mine.begin; j < mine.end; ++j) {
    const int n = std::snprintf(line, sizeof line, "1\tsnp%llu\t0\t%llu\tA\tG\n",
                                static_cast<unsigned long long>(j), static_cast<unsigned long long>(j + 1));
    text.append(line, static_cast<std::size_t>(n));
  }
  return text;
}

std::string CcaSynthJob::fam_text() const {
  if (comm_.rank() != 0) return "";
  std::string text;
  for (const std::uint64_t i : roster_.fam) {
    const std::string id = sample_id(i);
    text += id + ' ' + id + " 0 0 0 -9\n";
  }
  return text;
}

void CcaSynthJob::write_y(const std::string& path) {
  const std::int64_t q = settings_.y_features, k = settings_.model.components;
  const auto mine = comm::BlockPartition(roster_.y.size(), comm_.size()).range(comm_.rank());
  std::vector<double> r(static_cast<std::size_t>(q * q));
  for (std::int64_t f = 0; f < q; ++f)
    for (std::int64_t c = 0; c < q; ++c)
      r[static_cast<std::size_t>(f * q + c)] = mixing(settings_.model, q, f, c);
  std::vector<float> y(mine.size() * static_cast<std::size_t>(q));
  std::vector<double> v(static_cast<std::size_t>(q));
  for (std::uint64_t row = mine.begin; row < mine.end; ++row) {
    const std::uint64_t individual = roster_.y[row];
    for (std::int64_t c = 0; c < q; ++c)
      v[static_cast<std::size_t>(c)] = channel(settings_.model, settings_.signal_weights, q, individual, c);
    for (std::int64_t f = 0; f < q; ++f) {
      double sum = 0;
      for (std::int64_t c = 0; c < q; ++c)
        sum += r[static_cast<std::size_t>(f * q + c)] * v[static_cast<std::size_t>(c)];
      y[(row - mine.begin) * static_cast<std::size_t>(q) + static_cast<std::size_t>(f)] =
          static_cast<float>(sum);
    }
  }
  std::vector<std::string> ids, names;
  for (const std::uint64_t i : roster_.y) ids.push_back(sample_id(i));
  for (std::int64_t f = 0; f < q; ++f) names.push_back("y" + std::to_string(f));

  io::H5Writer h5(comm_, path);
  jobs::write_run_attributes(h5, env_, settings_.model.seed, "complete");
  h5.write_distributed_rows("/Y", y.data(), mine.size(), static_cast<std::size_t>(q));
  h5.write_strings("/sample_id", ids);
  h5.write_strings("/feature_names", names);
  h5.write_replicated("/true_correlations", settings_.correlations);
  h5.write_replicated("/genetic_r2", settings_.genetic_r2);
  h5.write_replicated("/signal_weights", settings_.signal_weights);
  h5.write_replicated_rows("/mixing", r.data(), static_cast<std::size_t>(q), static_cast<std::size_t>(q));
  h5.set_attribute("/", "model", model_text(settings_));
  h5.set_attribute("/", "samples", settings_.samples);
  h5.set_attribute("/", "unmatched", settings_.unmatched);
  h5.set_attribute("/", "snps", settings_.snps);
  h5.set_attribute("/", "components", k);
  h5.set_attribute("/", "genotypes", settings_.prefix);
  h5.close();
}

void CcaSynthJob::finalize() {
  const auto start = Clock::now();
  io::OutputSet outputs(comm_, env_.out_dir);
  const std::string bed = outputs.add(settings_.prefix + ".bed");
  const std::string bim = outputs.add(settings_.prefix + ".bim");
  const std::string fam = outputs.add(settings_.prefix + ".fam");
  const std::string y = outputs.add(settings_.prefix + "_y.h5");
  write_bed(bed);
  const double bed_seconds = comm_.allreduce(seconds_since(start), comm::Op::max);
  io::write_concatenated_to(comm_, bim, bim_text());
  io::write_concatenated_to(comm_, fam, fam_text());
  write_y(y);
  outputs.commit();
  const double bytes = static_cast<double>(io::plink::bed_file_bytes(roster_.fam.size(), settings_.snps));
  engine::Log::user().info(
      "cca-synth: {} samples in the .fam, {} in Y ({} in both), {} SNPs, {} Y features; .bed {} in {:.2f} s "
      "({}/s), all files in {:.2f} s; planted canonical correlations {}",
      roster_.fam.size(), roster_.y.size(), settings_.samples, settings_.snps, settings_.y_features,
      engine::human_bytes(bytes), bed_seconds, engine::human_bytes(bytes / std::max(bed_seconds, 1e-9)),
      seconds_since(start), [&] {
        std::string text;
        for (const double r : settings_.correlations) text += (text.empty() ? "" : ",") + std::to_string(r);
        return text;
      }());
}

}  // namespace

std::unique_ptr<engine::Job> make_job(const jobs::JobEnv& env) {
  return std::make_unique<CcaSynthJob>(env, parse_settings(env.config));
}

}  // namespace skein::cca_synth
