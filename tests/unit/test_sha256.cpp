// dsir's SHA-256 (SHA extensions and portable) against the FIPS 180-4 / NIST example vectors, and the two
// backends against each other on every length that crosses the one- and two-block padding cases.
// Also the 16-message path (AVX-512 lanes) against the one-message digest on every one-block length.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
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

namespace skein_sha256_lanes_tests {

namespace sha256 = skein::dsir::sha256;
using sha256::Backend;

// `s` (at most 55 bytes) padded into its one block, as the n-gram hasher does.
void pad_into(const std::string& s, unsigned char* block) {
  std::memset(block, 0, 64);
  if (!s.empty()) std::memcpy(block, s.data(), s.size());
  block[s.size()] = 0x80;
  const std::uint64_t bits = 8 * static_cast<std::uint64_t>(s.size());
  for (int i = 0; i < 8; ++i) block[56 + i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
}

// The 16-message path (AVX-512 lanes where the CPU has them, and each one-block backend) against the
// portable one-message digest, on random messages of every length that fits one block (0..55 bytes), each
// length in every lane; and the NIST "abc" vector in one lane.
TEST(Sha256, SixteenLanesEqualOneBlockDigests) {
  std::vector<Backend> lanes_backends = {Backend::automatic, Backend::portable};
  if (sha256::shani_available()) lanes_backends.push_back(Backend::shani);
  if (sha256::avx512_available()) lanes_backends.push_back(Backend::avx512);
  std::mt19937_64 rng(11);
  alignas(64) unsigned char blocks[16 * 64];
  std::uint32_t words[8][16];
  for (int round = 0; round < 4 * 56; ++round) {
    std::string messages[16];
    for (int l = 0; l < 16; ++l) {
      const std::size_t length = static_cast<std::size_t>(round + 7 * l) % 56;  // every length in every lane
      messages[l].resize(length);
      for (char& c : messages[l]) c = static_cast<char>(rng());
      if (round == 0 && l == 5) messages[l] = "abc";
      pad_into(messages[l], blocks + 64 * l);
    }
    for (Backend backend : lanes_backends) {
      sha256::digest_padded_blocks16(blocks, words, backend);
      for (int l = 0; l < 16; ++l) {
        std::uint32_t expected[8];
        sha256::digest_words(messages[l], expected, Backend::portable);
        for (int i = 0; i < 8; ++i) {
          ASSERT_EQ(words[i][l], expected[i]) << "backend " << static_cast<int>(backend) << " lane " << l
                                              << " length " << messages[l].size() << " word " << i;
        }
        std::uint32_t one[8];
        sha256::digest_padded_block(blocks + 64 * l, one);
        for (int i = 0; i < 8; ++i) ASSERT_EQ(one[i], expected[i]) << "one block, lane " << l;
      }
      if (round == 0) EXPECT_EQ(words[0][5], 0xba7816bfu);  // SHA-256("abc") starts ba7816bf
    }
  }
  EXPECT_EQ(sha256::resolved16(Backend::automatic),
            sha256::avx512_available() ? Backend::avx512
                                       : (sha256::shani_available() ? Backend::shani : Backend::portable));
  std::printf("16 lanes: AVX-512 %s\n", sha256::avx512_available()
                                            ? "present: tested it and the one-block backends"
                                            : "absent: tested the one-block backends");
}

}  // namespace skein_sha256_lanes_tests
