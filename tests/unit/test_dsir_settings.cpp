// dsir.index_cache as parse_settings resolves it: auto is $XDG_CACHE_HOME/skein/zstd-index when that is an
// absolute path, else $HOME/.cache/skein/zstd-index, else none; off is none; a directory is itself.
#include "engine/error.hpp"
#include "jobs/dsir/settings.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

namespace {

std::string index_cache_dir(const std::string& value) {
  const skein::engine::Config config = skein::engine::Config::resolve(
      "dsir", skein::dsir::job_spec().keys, "", "",
      {{"raw", "raw.jsonl"}, {"target", "target.jsonl"}, {"num_select", "1"}, {"index_cache", value}});
  return skein::dsir::parse_settings(config).index_cache_dir;
}

// Sets (or with nullptr unsets) an environment variable for one test, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = ::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

TEST(DsirSettings, IndexCacheAutoFollowsXdgThenHome) {
  {
    const ScopedEnv xdg("XDG_CACHE_HOME", "/scratch/me/cache"), home("HOME", "/home/me");
    EXPECT_EQ(index_cache_dir("auto"), "/scratch/me/cache/skein/zstd-index");
  }
  {
    // A relative XDG_CACHE_HOME is invalid by the XDG spec and ignored.
    const ScopedEnv xdg("XDG_CACHE_HOME", "relative"), home("HOME", "/home/me");
    EXPECT_EQ(index_cache_dir("auto"), "/home/me/.cache/skein/zstd-index");
  }
  {
    const ScopedEnv xdg("XDG_CACHE_HOME", nullptr), home("HOME", nullptr);
    EXPECT_EQ(index_cache_dir("auto"), "");
  }
}

TEST(DsirSettings, IndexCacheOffOrADirectory) {
  EXPECT_EQ(index_cache_dir("off"), "");
  EXPECT_EQ(index_cache_dir("/shared/corpus-index"), "/shared/corpus-index");
  EXPECT_THROW(index_cache_dir(""), skein::engine::UsageError);
}

}  // namespace
