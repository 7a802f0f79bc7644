// Config resolution: INI + overrides, defaults, typed getters and the errors users see.
#include "engine/config.hpp"
#include "engine/error.hpp"

#include <gtest/gtest.h>

using skein::engine::Config;
using skein::engine::ConfigKey;
using skein::engine::UsageError;

namespace {

const std::vector<ConfigKey> kKeys = {
    {"target", "", "target files", true},
    {"num_buckets", "10000", "buckets"},
    {"lowercase", "true", "lowercase"},
    {"hash", "xxh3", "hash"},
    {"raw_fit", "all", "fraction", false, false},
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Config, FileOverridesDefaultsAndCommandLineOverridesFile) {
  const std::string ini = "# comment\n[dsir]\ntarget = a.jsonl b.jsonl\nnum_buckets = 500\nhash=sha256\n";
  const Config config = Config::resolve("dsir", kKeys, ini, "x.ini", {{"num_buckets", "77"}});
  EXPECT_EQ(config.get_int("num_buckets", 1, 1000), 77);
  EXPECT_EQ(config.get("hash"), "sha256");
  EXPECT_TRUE(config.get_bool("lowercase"));
  EXPECT_EQ(config.get_list("target"), (std::vector<std::string>{"a.jsonl", "b.jsonl"}));
  EXPECT_NE(config.to_ini().find("num_buckets = 77"), std::string::npos);
}

TEST(Config, UnknownKeyInFileNamesKeyFileAndSuggestion) {
  const std::string message =
      error_of([] { Config::resolve("dsir", kKeys, "[dsir]\ntarget=a\nnum_bukets=3\n", "job.ini", {}); });
  EXPECT_NE(message.find("dsir.num_bukets"), std::string::npos) << message;
  EXPECT_NE(message.find("job.ini"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'dsir.num_buckets'"), std::string::npos) << message;
}

TEST(Config, KeyOutsideTheSectionIsAnError) {
  const std::string message = error_of([] { Config::resolve("dsir", kKeys, "[cca]\ntarget=a\n", "job.ini", {}); });
  EXPECT_NE(message.find("cca.target"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'dsir.target'"), std::string::npos) << message;
}

TEST(Config, UnknownOverrideIsAnError) {
  const std::string message = error_of([] { Config::resolve("dsir", kKeys, "", "", {{"hsh", "x"}}); });
  EXPECT_NE(message.find("--dsir.hsh"), std::string::npos) << message;
  EXPECT_NE(message.find("dsir.hash"), std::string::npos) << message;
}

TEST(Config, MissingRequiredKeyNamesIt) {
  const std::string message = error_of([] { Config::resolve("dsir", kKeys, "", "", {}); });
  EXPECT_NE(message.find("dsir.target"), std::string::npos) << message;
}

TEST(Config, BadValuesNameKeyAndValue) {
  const Config config = Config::resolve(
      "dsir", kKeys, "", "", {{"target", "a"}, {"num_buckets", "12x"}, {"lowercase", "maybe"}, {"hash", "md5"}});
  EXPECT_NE(error_of([&] { config.get_int("num_buckets", 1, 100); }).find("'12x' is not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { config.get_bool("lowercase"); }).find("dsir.lowercase"), std::string::npos);
  EXPECT_NE(error_of([&] { config.get_choice("hash", {"xxh3", "sha256"}); }).find("xxh3|sha256"), std::string::npos);
  const Config big = Config::resolve("dsir", kKeys, "", "", {{"target", "a"}, {"num_buckets", "5000"}});
  EXPECT_NE(error_of([&] { big.get_int("num_buckets", 1, 100); }).find("out of range"), std::string::npos);
}

TEST(Config, ResultsHashIgnoresKeysThatDoNotChangeResults) {
  const Config a = Config::resolve("dsir", kKeys, "", "", {{"target", "a"}, {"raw_fit", "0.5"}});
  const Config b = Config::resolve("dsir", kKeys, "", "", {{"target", "a"}, {"raw_fit", "all"}});
  const Config c = Config::resolve("dsir", kKeys, "", "", {{"target", "b"}});
  EXPECT_EQ(a.results_hash(), b.results_hash());
  EXPECT_NE(a.results_hash(), c.results_hash());
}

TEST(Config, ClosestMatch) {
  EXPECT_EQ(skein::engine::closest_match("num_bucket", {"ngrams", "num_buckets", "seed"}), "num_buckets");
  EXPECT_EQ(skein::engine::closest_match("zzzzzzzzzzzz", {"ngrams", "seed"}), "");
}
