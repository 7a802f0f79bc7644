#include "jobs/registry.hpp"

#include "jobs/cca_synth/cca_synth_job.hpp"
#include "jobs/dcdm_train/dcdm_train_job.hpp"
#include "jobs/dsir/dsir_job.hpp"
#include "jobs/cca/cca_job.hpp"
#include "jobs/hessian/hessian_job.hpp"
#include "jobs/poisson/poisson_job.hpp"

namespace skein::jobs {

const std::vector<JobEntry>& all_jobs() {
  static const std::vector<JobEntry> jobs = {
      {dsir::job_spec(), [](const JobEnv& env) { return dsir::make_job(env); }},
      {poisson::job_spec(), [](const JobEnv& env) { return poisson::make_job(env); }},
      {hessian::job_spec(), [](const JobEnv& env) { return hessian::make_job(env); }},
      {cca::job_spec(), [](const JobEnv& env) { return cca::make_job(env); }},
      {cca_synth::job_spec(), [](const JobEnv& env) { return cca_synth::make_job(env); }},
      {dcdm_train::job_spec(), [](const JobEnv& env) { return dcdm_train::make_job(env); }},
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
