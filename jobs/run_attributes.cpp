#include "jobs/run_attributes.hpp"

namespace skein::jobs {

void write_run_attributes(io::H5Writer& h5, const JobEnv& env, std::uint64_t seed, const std::string& status) {
  // Every rank must pass the same value: take the slowest rank's clock.
  const double local_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - env.started).count();
  const double wall_seconds = env.comm.allreduce(local_seconds, comm::Op::max);
  h5.set_attribute("/", "skein_version", std::string(SKEIN_VERSION));
  h5.set_attribute("/", "job", env.config.section());
  h5.set_attribute("/", "config", env.config.to_ini());
  h5.set_attribute("/", "ranks", static_cast<std::int64_t>(env.comm.size()));
  h5.set_attribute("/", "status", status);
  h5.set_attribute("/", "seed", static_cast<std::int64_t>(seed));
  h5.set_attribute("/", "wall_seconds", wall_seconds);
  h5.set_attribute("/", "run_id", env.run_id);
}

}  // namespace skein::jobs
