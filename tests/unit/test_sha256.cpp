// dsir's SHA-256 (SHA extensions and portable) against the FIPS 180-4 / NIST example vectors, and the two
// backends against each other on every length that crosses the one- and two-block padding cases.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

#include "jobs/dsir/sha256.hpp"

namespace {

namespace sha256 = skein::dsir::sha256;
using sha256::Backend;

std::string hex_digest(const std::string& s, Backend backend) {
  std::uint32_t words[8];
  sha256::digest_words(s, words, backend);
  std::string hex;
  char buf[9];
  for (const std::uint32_t w : words) {
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(w));
    hex += buf;
  }
  return hex;
}

std::vector<Backend> backends() {
  std::vector<Backend> all = {Backend::automatic, Backend::portable};
  if (sha256::shani_available()) all.push_back(Backend::shani);
  return all;
}

// NIST's example values (FIPS 180-2 appendix B: "abc", the 56- and 112-byte messages, a million a), and
// Python hashlib for the empty string and 55 zero bytes (the longest input that fits one block).
TEST(Sha256, NistVectors) {
  const struct {
    std::string input;
    const char* digest;
  } cases[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",  // 56 bytes: padding takes a second block
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopq"
       "rst"
       "nopqrstu",  // 112 bytes
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
      {std::string(55, '\0'), "02779466cdec163811d078815c633f21901413081449002f24aa3e80f0b88ef7"},
      {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (Backend backend : backends()) {
    for (const auto& c : cases) {
      EXPECT_EQ(hex_digest(c.input, backend), c.digest)
          << "length " << c.input.size() << " backend " << static_cast<int>(backend);
    }
  }
}

TEST(Sha256, BackendsAgreeOnEveryLength) {
  std::mt19937_64 rng(7);
  for (std::size_t length = 0; length <= 300; ++length) {
    for (int trial = 0; trial < 4; ++trial) {
      std::string s(length, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      const std::string portable = hex_digest(s, Backend::portable);
      EXPECT_EQ(hex_digest(s, Backend::automatic), portable) << length;
      if (sha256::shani_available()) EXPECT_EQ(hex_digest(s, Backend::shani), portable) << length;
    }
  }
}

TEST(Sha256, AutomaticPicksTheExtensionsWhenPresent) {
  EXPECT_EQ(sha256::resolved(Backend::automatic),
            sha256::shani_available() ? Backend::shani : Backend::portable);
  EXPECT_EQ(sha256::resolved(Backend::portable), Backend::portable);
  std::printf("SHA extensions %s\n", sha256::shani_available() ? "present: tested both backends"
                                                               : "absent: tested the portable backend");
}

}  // namespace
