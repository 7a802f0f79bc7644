// SHA-256 of short strings for the hashed n-grams: the x86 SHA extensions when the CPU has them, else
// portable C++; and sixteen one-block messages at once with AVX-512 for batched cache misses.
#pragma once

#include <cstdint>
#include <string_view>

namespace skein::dsir::sha256 {

// Which compression function runs. `automatic` is shani when the CPU has the SHA extensions (checked once,
// with cpuid), else portable; the others force one (shani only where shani_available()). avx512 applies only
// to digest_padded_blocks16 (16 messages in the lanes of 512-bit registers); for one message it means
// automatic.
enum class Backend { automatic, portable, shani, avx512 };

// Whether this build can use the SHA extensions and this CPU has them.
bool shani_available();

// Whether this build can use AVX-512 (F, BW and VL) and this CPU and OS have it enabled.
bool avx512_available();

// The backend `automatic` resolves to on this machine for one message: shani or portable (avx512 -> the
// same).
Backend resolved(Backend backend);

// The backend digest_padded_blocks16 runs with `backend` on this machine: automatic is avx512 when available,
// else shani, else portable; a forced one that is not available falls back the same way.
Backend resolved16(Backend backend);

// FIPS 180-4 SHA-256 of `s`, as its eight 32-bit state words H0..H7: the digest is their big-endian bytes
// in order, so the words are also the digest's 256-bit big-endian integer as limbs, most significant first.
// Strings of up to 55 bytes take a single block, the case of nearly every n-gram.
void digest_words(std::string_view s, std::uint32_t words[8], Backend backend = Backend::automatic);

// The same for a message already padded into one 64-byte block (its bytes, 0x80, zeros, its length in bits as
// a big-endian 64-bit number): one compression with the automatic backend.
void digest_padded_block(const unsigned char block[64], std::uint32_t words[8]);

// Sixteen independent messages, each already padded into one 64-byte block, stored one after the other
// (message l at blocks + 64 l): their state words, transposed, words[i][l] = word i of message l's digest
// (the layout the 16 lanes produce; a caller reduces each column). The same digests as digest_padded_block.
void digest_padded_blocks16(const unsigned char* blocks, std::uint32_t words[8][16],
                            Backend backend = Backend::automatic);

}  // namespace skein::dsir::sha256
