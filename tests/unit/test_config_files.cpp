// Config files as users write them: a byte-order mark, a directory or a binary file given as --config, and
// file names with spaces or commas in list keys (quoted).
#include "engine/config.hpp"
#include "engine/error.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using skein::engine::Config;
using skein::engine::ConfigKey;
using skein::engine::UsageError;

namespace {

namespace fs = std::filesystem;

const std::vector<ConfigKey> kKeys = {{"raw", "", "raw files", true}, {"seed", "0", "seed"}};

std::string temp_file(const std::string& name, const std::string& bytes) {
  const fs::path path =
      fs::temp_directory_path() / ("skein-config-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(ConfigFiles, AByteOrderMarkIsNotPartOfTheFirstLine) {
  const std::string path = temp_file("bom.ini", "\xEF\xBB\xBF[dsir]\nraw = a.jsonl\nseed = 3\n");
  const std::string text = skein::engine::read_config_file(path);
  EXPECT_EQ(text.rfind("[dsir]", 0), 0u);
  const Config config = Config::resolve("dsir", kKeys, text, path, {});
  EXPECT_EQ(config.get("seed"), "3");
  fs::remove(path);
}

TEST(ConfigFiles, ADirectoryOrABinaryFileIsNamedAsSuch) {
  const std::string dir = fs::temp_directory_path().string();
  EXPECT_EQ(error_of([&] { skein::engine::read_config_file(dir); }),
            "config file " + dir + " is a directory, not an INI file");
  const std::string binary = temp_file("binary.ini", std::string("\x89HDF\r\n\x1a\n\0\0", 10));
  const std::string message = error_of([&] { skein::engine::read_config_file(binary); });
  EXPECT_NE(message.find(binary + " is not a text INI file (byte 6 is 0x1a)"), std::string::npos) << message;
  fs::remove(binary);
  EXPECT_NE(error_of([&] {
              skein::engine::read_config_file(dir + "/no-such.ini");
            }).find("cannot read config file"),
            std::string::npos);
}

TEST(ConfigFiles, QuotedListItemsKeepSpacesAndCommas) {
  const Config config = Config::resolve(
      "dsir", kKeys, "[dsir]\nraw = \"my data/a b.jsonl\", plain.jsonl \"x,y.jsonl\"\n", "c.ini", {});
  EXPECT_EQ(config.get_list("raw"),
            (std::vector<std::string>{"my data/a b.jsonl", "plain.jsonl", "x,y.jsonl"}));
  const Config unclosed = Config::resolve("dsir", kKeys, "[dsir]\nraw = \"a b.jsonl\n", "c.ini", {});
  EXPECT_NE(error_of([&] { unclosed.get_list("raw"); }).find("a double quote is not closed"),
            std::string::npos);
}
