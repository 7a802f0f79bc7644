// SHA-256 of short strings for the hashed n-grams: the x86 SHA extensions when the CPU has them, else
// portable C++.
#pragma once

#include <cstdint>
#include <string_view>

namespace skein::dsir::sha256 {

// Which compression function runs. `automatic` is shani when the CPU has the SHA extensions (checked once,
// with cpuid), else portable; the others force one (shani only where shani_available()).
enum class Backend { automatic, portable, shani };

// Whether this build can use the SHA extensions and this CPU has them.
bool shani_available();

// The backend `automatic` resolves to on this machine.
Backend resolved(Backend backend);

// FIPS 180-4 SHA-256 of `s`, as its eight 32-bit state words H0..H7: the digest is their big-endian bytes
// in order, so the words are also the digest's 256-bit big-endian integer as limbs, most significant first.
// Strings of up to 55 bytes take a single block, the case of nearly every n-gram.
void digest_words(std::string_view s, std::uint32_t words[8], Backend backend = Backend::automatic);

// The same for a message already padded into one 64-byte block (its bytes, 0x80, zeros, its length in bits as
// a big-endian 64-bit number): one compression with the automatic backend.
void digest_padded_block(const unsigned char block[64], std::uint32_t words[8]);

}  // namespace skein::dsir::sha256
