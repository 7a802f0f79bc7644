// Config resolution: INI + overrides, defaults, typed getters and the errors users see.
#include "engine/config.hpp"
#include "engine/error.hpp"

#include <gtest/gtest.h>

using skein::engine::Config;
using skein::engine::ConfigKey;
using skein::engine::UsageError;

namespace {

const std::vector<ConfigKey> kKeys = {
    {"target", "", "target files", true},         {"num_buckets", "10000", "buckets"},
    {"lowercase", "true", "lowercase"},           {"hash", "xxh3", "hash"},
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
  const std::string message =
      error_of([] { Config::resolve("dsir", kKeys, "[cca]\ntarget=a\n", "job.ini", {}); });
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
  const Config config =
      Config::resolve("dsir", kKeys, "", "",
                      {{"target", "a"}, {"num_buckets", "12x"}, {"lowercase", "maybe"}, {"hash", "md5"}});
  EXPECT_NE(error_of([&] { config.get_int("num_buckets", 1, 100); }).find("'12x' is not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { config.get_bool("lowercase"); }).find("dsir.lowercase"), std::string::npos);
  EXPECT_NE(error_of([&] {
              config.get_choice("hash", {"xxh3", "sha256"});
            }).find("xxh3|sha256"),
            std::string::npos);
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

namespace {
const std::vector<ConfigKey> kNumericKeys = {
    {"piece", "8M", "bytes"},
    {"steps", "1,2,3", "ints"},
    {"weights", "0.5, 1e-3 2", "doubles"},
    {"grid", "64,32,16", "grid"},
};
Config numeric(const std::vector<std::pair<std::string, std::string>>& overrides) {
  return Config::resolve("poisson", kNumericKeys, "", "", overrides);
}
}  // namespace

TEST(Config, ByteSizes) {
  EXPECT_EQ(numeric({}).get_bytes("piece"), 8u << 20);
  EXPECT_EQ(numeric({{"piece", "65536"}}).get_bytes("piece"), 65536u);
  EXPECT_EQ(numeric({{"piece", "64k"}}).get_bytes("piece"), 65536u);
  EXPECT_EQ(numeric({{"piece", "64K"}}).get_bytes("piece"), 65536u);
  EXPECT_EQ(numeric({{"piece", "1G"}}).get_bytes("piece"), 1ull << 30);
  EXPECT_EQ(numeric({{"piece", "2GiB"}}).get_bytes("piece"), 2ull << 30);
  EXPECT_EQ(numeric({{"piece", "3MB"}}).get_bytes("piece"), 3ull << 20);
  EXPECT_EQ(numeric({{"piece", "1T"}}).get_bytes("piece"), 1ull << 40);
  EXPECT_EQ(numeric({{"piece", "0"}}).get_bytes("piece"), 0u);
  for (const char* bad :
       {"", "M", "8Q", "-1k", "1.5M", "8 M", "k8", "99999999999999999999", "20000000000T"}) {
    const std::string message = error_of([&] { numeric({{"piece", bad}}).get_bytes("piece"); });
    EXPECT_NE(message.find("poisson.piece"), std::string::npos) << bad << ": " << message;
    EXPECT_NE(message.find("byte size"), std::string::npos) << bad << ": " << message;
  }
  const std::string range = error_of([] { numeric({{"piece", "1k"}}).get_bytes("piece", 4096); });
  EXPECT_NE(range.find("poisson.piece"), std::string::npos) << range;
  EXPECT_NE(range.find("out of range"), std::string::npos) << range;
}

TEST(Config, IntAndDoubleLists) {
  EXPECT_EQ(numeric({}).get_int_list("steps", 0, 10), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(numeric({{"steps", "0, 5 ,9"}}).get_int_list("steps", 0, 10),
            (std::vector<std::int64_t>{0, 5, 9}));
  EXPECT_TRUE(numeric({{"steps", ""}}).get_int_list("steps", 0, 10).empty());
  EXPECT_EQ(numeric({}).get_double_list("weights"), (std::vector<double>{0.5, 1e-3, 2.0}));
  const std::string not_int = error_of([] { numeric({{"steps", "1,2.5,3"}}).get_int_list("steps", 0, 10); });
  EXPECT_NE(not_int.find("poisson.steps"), std::string::npos) << not_int;
  EXPECT_NE(not_int.find("'2.5'"), std::string::npos) << not_int;
  const std::string range = error_of([] { numeric({{"steps", "1,20"}}).get_int_list("steps", 0, 10); });
  EXPECT_NE(range.find("out of range"), std::string::npos) << range;
  const std::string not_double = error_of([] { numeric({{"weights", "1,nan"}}).get_double_list("weights"); });
  EXPECT_NE(not_double.find("poisson.weights"), std::string::npos) << not_double;
  EXPECT_NE(not_double.find("'nan'"), std::string::npos) << not_double;
}

TEST(Config, IntTriples) {
  EXPECT_EQ(numeric({}).get_int_triple("grid", 1, 4096), (std::array<std::int64_t, 3>{64, 32, 16}));
  EXPECT_EQ(numeric({{"grid", "128"}}).get_int_triple("grid", 1, 4096),
            (std::array<std::int64_t, 3>{128, 128, 128}));
  EXPECT_EQ(numeric({{"grid", "8x9x10"}}).get_int_triple("grid", 1, 4096),
            (std::array<std::int64_t, 3>{8, 9, 10}));
  for (const char* bad : {"1,2", "1,2,3,4", "a,b,c", ""}) {
    const std::string message = error_of([&] { numeric({{"grid", bad}}).get_int_triple("grid", 1, 4096); });
    EXPECT_NE(message.find("poisson.grid"), std::string::npos) << bad << ": " << message;
  }
  const std::string zero = error_of([] { numeric({{"grid", "0,4,4"}}).get_int_triple("grid", 1, 4096); });
  EXPECT_NE(zero.find("out of range [1, 4096]"), std::string::npos) << zero;
}
