#include "jobs/registry.hpp"

#include "jobs/cca_synth/cca_synth_job.hpp"
#include "jobs/dcdm_train/dcdm_train_job.hpp"
#include "jobs/dsir/dsir_job.hpp"
#include "jobs/cca/cca_job.hpp"
#include "jobs/hessian/hessian_job.hpp"
#include "jobs/poisson/poisson_job.hpp"

namespace skein::jobs {

namespace {
// Keys the runner reads for every job, after the job's own.
engine::JobSpec with_runner_keys(engine::JobSpec spec) {
  spec.keys.push_back({kCommTimeoutKey, "600",
                       "seconds a rank waits for the others in one communication (or one checkpoint write) "
                       "before it aborts every rank with exit 69; 0 waits forever",
                       false, /*affects_results=*/false});
  return spec;
}
}  // namespace

const std::vector<JobEntry>& all_jobs() {
  static const std::vector<JobEntry> jobs = {
      {with_runner_keys(dsir::job_spec()), [](const JobEnv& env) { return dsir::make_job(env); }},
      {with_runner_keys(poisson::job_spec()), [](const JobEnv& env) { return poisson::make_job(env); }},
      {with_runner_keys(hessian::job_spec()), [](const JobEnv& env) { return hessian::make_job(env); }},
      {with_runner_keys(cca::job_spec()), [](const JobEnv& env) { return cca::make_job(env); }},
      {with_runner_keys(cca_synth::job_spec()), [](const JobEnv& env) { return cca_synth::make_job(env); }},
      {with_runner_keys(dcdm_train::job_spec()), [](const JobEnv& env) { return dcdm_train::make_job(env); }},
  };
  return jobs;
}

const JobEntry* find_job(const std::string& name) {
  for (const auto& entry : all_jobs()) {
    if (entry.spec.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace skein::jobs
