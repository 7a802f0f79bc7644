#include "jobs/dsir/tokenizer.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#if defined(__SSE2__) && !defined(SKEIN_DSIR_NO_SIMD)
#include <emmintrin.h>
#define SKEIN_DSIR_SSE2 1
#endif

#include "jobs/dsir/unicode_tables.inc"

namespace skein::dsir {
namespace {

using detail::CpRecord;
using detail::kFlagCased;
using detail::kFlagIgnorable;
using detail::kFlagMulti;
using detail::kLowerClassShift;
using detail::kLowerMulti;
using detail::kRecords;
using detail::kStage1;
using detail::kStage2;
using detail::kStageShift;

// Token classes of the regex `\w+|[^\w\s]+`: runs of kWord and runs of kOther are tokens, kSpace separates.
enum : int { kSpace = 0, kWord = 1, kOther = 2 };

// Room past the lowered text: the vector path stores whole 64-byte blocks.
constexpr std::size_t kPad = 128;

constexpr std::uint32_t kCapitalSigma = 0x3A3;

inline const CpRecord& record_of(std::uint32_t cp) {
  constexpr std::uint32_t mask = (1u << kStageShift) - 1;
  return kRecords[kStage2[(std::size_t{kStage1[cp >> kStageShift]} << kStageShift) | (cp & mask)]];
}

struct AsciiTables {
  std::uint8_t cls[128];
  char lower[128];
  std::uint8_t flags[128];
};

constexpr AsciiTables make_ascii_tables() {
  AsciiTables t{};
  for (std::uint32_t c = 0; c < 128; ++c) {
    const CpRecord& r = kRecords[kStage2[(std::size_t{kStage1[0]} << kStageShift) | c]];
    t.cls[c] = r.flags & 3;
    t.lower[c] = static_cast<char>(static_cast<std::int32_t>(c) + r.delta);
    t.flags[c] = r.flags;
  }
  return t;
}

constexpr AsciiTables kAscii = make_ascii_tables();

// Decodes the well-formed UTF-8 sequence (Unicode Table 3-7) starting at p, whose first byte is >= 0x80.
// Returns its length, or 0 when p does not start one: then only the byte at p is invalid, since no
// continuation byte can start a sequence.
inline int decode(const unsigned char* p, const unsigned char* end, std::uint32_t& cp) {
  const unsigned b0 = p[0];
  const std::ptrdiff_t avail = end - p;
  if (b0 < 0xC2) return 0;  // continuation byte, or overlong C0/C1
  if (b0 < 0xE0) {
    if (avail < 2 || (p[1] & 0xC0) != 0x80) return 0;
    cp = ((b0 & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    return 2;
  }
  if (b0 < 0xF0) {
    if (avail < 3) return 0;
    const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80;  // E0 80..9F: overlong
    const unsigned hi = b0 == 0xED ? 0x9F : 0xBF;  // ED A0..BF: surrogates
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return 0;
    cp = ((b0 & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    return 3;
  }
  if (b0 < 0xF5) {
    if (avail < 4) return 0;
    const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80;  // F0 80..8F: overlong
    const unsigned hi = b0 == 0xF4 ? 0x8F : 0xBF;  // F4 90..: above U+10FFFF
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    cp = ((b0 & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    return 4;
  }
  return 0;
}

inline int encode(std::uint32_t cp, char* o) {
  if (cp < 0x80) {
    o[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    o[0] = static_cast<char>(0xC0 | (cp >> 6));
    o[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = static_cast<char>(0xE0 | (cp >> 12));
    o[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    o[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = static_cast<char>(0xF0 | (cp >> 18));
  o[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  o[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  o[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

inline unsigned ctz64(std::uint64_t x) {
  return static_cast<unsigned>(__builtin_ctzll(x));
}

}  // namespace

Tokenizer::Tokenizer(bool lowercase) : lowercase_(lowercase) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

const char* Tokenizer::unicode_version() {
  return detail::kUnicodeVersion;
}

bool Tokenizer::tokenize(std::string_view text, std::vector<std::string_view>& tokens) {
  const bool invalid = lowercase_ ? run<true>(text) : run<false>(text);
  tokens.resize(ntoks_);
  const char* const out = buf_.get();
  const std::uint32_t* const starts = starts_.get();
  const std::uint32_t* const ends = ends_.get();
  std::string_view* const views = tokens.data();
  for (std::size_t i = 0; i < ntoks_; ++i) views[i] = std::string_view(out + starts[i], ends[i] - starts[i]);
  return invalid;
}

void Tokenizer::grow_bounds(std::size_t min_cap, std::size_t nstarts, std::size_t nends) {
  const std::size_t cap = std::max({bounds_cap_ * 2, min_cap, std::size_t{256}});
  std::unique_ptr<std::uint32_t[]> s(new std::uint32_t[cap]), e(new std::uint32_t[cap]);
  if (nstarts > 0) std::copy(starts_.get(), starts_.get() + nstarts, s.get());
  if (nends > 0) std::copy(ends_.get(), ends_.get() + nends, e.get());
  starts_ = std::move(s);
  ends_ = std::move(e);
  bounds_cap_ = cap;
}

// One pass over the input writes the (lowercased) text to buf_, whitespace and invalid bytes as ' ', and
// records where tokens start and end. Lowercasing never makes UTF-8 more than 1.5 times longer (checked by
// the generator), so buf_ is sized once per call. Pure-ASCII stretches go through 64-byte vector blocks;
// other code points through the two-stage tables.
template <bool Lower>
bool Tokenizer::run(std::string_view text) {
  const std::size_t n = text.size();
  const std::size_t need = n + n / 2 + kPad;
  if (need > std::numeric_limits<std::uint32_t>::max())
    throw std::length_error("Tokenizer: text too long (token offsets are 32-bit)");
  if (buf_cap_ < need) {
    buf_.reset(new char[need]);
    buf_cap_ = need;
  }
  ntoks_ = 0;
  if (bounds_cap_ < 256) grow_bounds(256, 0, 0);
  char* const out = buf_.get();
  std::uint32_t* starts = starts_.get();
  std::uint32_t* ends = ends_.get();
  std::size_t ns = 0, ne = 0;  // tokens started, tokens ended: ne == ns, or ns - 1 inside a token
  std::size_t o = 0;           // write position in out
  int prev = kSpace;           // class of the last code point written
  bool invalid = false;

  auto reserve_bounds = [&](std::size_t extra) {
    if (ns + extra <= bounds_cap_) return;
    grow_bounds(ns + extra, ns, ne);
    starts = starts_.get();
    ends = ends_.get();
  };
  auto begin_class = [&](int cls) {
    if (cls == prev) return;
    if (prev != kSpace) ends[ne++] = static_cast<std::uint32_t>(o);
    if (cls != kSpace) {
      reserve_bounds(1);
      starts[ns++] = static_cast<std::uint32_t>(o);
    }
    prev = cls;
  };
  auto put_cp = [&](int cls, std::uint32_t cp) {
    begin_class(cls);
    if (cls == kSpace)
      out[o++] = ' ';
    else
      o += static_cast<std::size_t>(encode(cp, out + o));
  };

  const auto* const begin = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char* const end = begin + n;
  const unsigned char* p = begin;

  // Final_Sigma context (CPython's handle_capital_sigma looks at the original text): whether the last code
  // point before state_pos that is not Case_Ignorable is Cased. Only non-ASCII code points move state_pos, so
  // the ASCII paths stay free of it; sync() folds in the ASCII bytes since when a non-ASCII one needs it.
  bool prev_cased = false;
  const unsigned char* state_pos = begin;
  auto sync = [&](const unsigned char* at) {
    for (const unsigned char* q = at; q > state_pos;) {
      const std::uint8_t f = kAscii.flags[*--q];
      if (!(f & kFlagIgnorable)) {
        prev_cased = (f & kFlagCased) != 0;
        break;
      }
    }
    state_pos = at;
  };
  // Whether the first code point from q on that is not Case_Ignorable is Cased (false at the end of the text,
  // or at an invalid byte, which is a separator and neither).
  auto next_cased = [&](const unsigned char* q) {
    while (q < end) {
      std::uint32_t c = *q;
      int len = 1;
      if (c >= 0x80 && (len = decode(q, end, c)) == 0) return false;
      const std::uint8_t f = record_of(c).flags;
      if (!(f & kFlagIgnorable)) return (f & kFlagCased) != 0;
      q += len;
    }
    return false;
  };

  auto ascii_byte = [&](unsigned char b) {
    const int cls = kAscii.cls[b];
    begin_class(cls);
    out[o++] = cls == kSpace ? ' ' : Lower ? kAscii.lower[b] : static_cast<char>(b);
  };

  while (p < end) {
    if (*p < 0x80) {
#ifdef SKEIN_DSIR_SSE2
      // Short ASCII runs inside non-ASCII text (the spaces of Cyrillic, Greek ...) go byte by byte.
      if (end - p >= 8) {
        std::uint64_t next8;
        std::memcpy(&next8, p, 8);
        if (next8 & 0x8080808080808080ull) {
          ascii_byte(*p++);
          continue;
        }
      }
      // Up to 64 ASCII bytes at once: classify with compares, store the lowered bytes, then walk the class
      // changes as bit masks instead of branching on every byte.
      const std::size_t avail = static_cast<std::size_t>(end - p);
      alignas(16) unsigned char tail[64];
      const unsigned char* src = p;
      if (avail < 64) {
        std::memcpy(tail, p, avail);
        std::memset(tail + avail, 0, 64 - avail);
        src = tail;
      }
      const __m128i upper_lo = _mm_set1_epi8('A' - 1), upper_hi = _mm_set1_epi8('Z' + 1);
      const __m128i lower_lo = _mm_set1_epi8('a' - 1), lower_hi = _mm_set1_epi8('z' + 1);
      const __m128i digit_lo = _mm_set1_epi8('0' - 1), digit_hi = _mm_set1_epi8('9' + 1);
      const __m128i under = _mm_set1_epi8('_'), space = _mm_set1_epi8(' '), case_bit = _mm_set1_epi8(0x20);
      const __m128i ctl_lo = _mm_set1_epi8(0x08), ctl_hi = _mm_set1_epi8(0x0E);  // \t \n \v \f \r
      const __m128i sep_lo = _mm_set1_epi8(0x1B), sep_hi = _mm_set1_epi8(0x20);  // U+001C..U+001F
      std::uint64_t high = 0, wmask = 0, smask = 0;
      for (int k = 0; k < 4; ++k) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16 * k));
        const __m128i up = _mm_and_si128(_mm_cmpgt_epi8(x, upper_lo), _mm_cmpgt_epi8(upper_hi, x));
        const __m128i lx = _mm_add_epi8(x, _mm_and_si128(up, case_bit));
        const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(lx, lower_lo), _mm_cmpgt_epi8(lower_hi, lx));
        const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, digit_lo), _mm_cmpgt_epi8(digit_hi, x));
        const __m128i word = _mm_or_si128(_mm_or_si128(letter, digit), _mm_cmpeq_epi8(x, under));
        const __m128i sp =
            _mm_or_si128(_mm_cmpeq_epi8(x, space),
                         _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi8(x, ctl_lo), _mm_cmpgt_epi8(ctl_hi, x)),
                                      _mm_and_si128(_mm_cmpgt_epi8(x, sep_lo), _mm_cmpgt_epi8(sep_hi, x))));
        const __m128i val = Lower ? lx : x;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + o + 16 * k),
                         _mm_or_si128(_mm_and_si128(sp, space), _mm_andnot_si128(sp, val)));
        const int shift = 16 * k;
        high |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(x))) << shift;
        wmask |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(word))) << shift;
        smask |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(sp))) << shift;
      }
      std::size_t m = high ? ctz64(high) : 64;  // the ASCII prefix; m >= 1 as *p < 0x80
      if (m > avail) m = avail;
      const std::uint64_t valid = m == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << m) - 1;
      wmask &= valid;
      smask &= valid;
      const std::uint64_t pmask = ~(wmask | smask) & valid;
      const std::uint64_t tokmask = wmask | pmask;
      std::uint64_t change = ((wmask ^ ((wmask << 1) | std::uint64_t{prev == kWord})) |
                              (pmask ^ ((pmask << 1) | std::uint64_t{prev == kOther}))) &
                             valid;
      // Tokens start where the class changes to a token class, and end where it changes from one.
      std::uint64_t start_bits = change & tokmask;
      std::uint64_t end_bits = change & ((tokmask << 1) | std::uint64_t{prev != kSpace});
      reserve_bounds(64);
      const auto base = static_cast<std::uint32_t>(o);
      for (; start_bits; start_bits &= start_bits - 1) starts[ns++] = base + ctz64(start_bits);
      for (; end_bits; end_bits &= end_bits - 1) ends[ne++] = base + ctz64(end_bits);
      const unsigned last = static_cast<unsigned>(m - 1);
      prev = (wmask >> last) & 1 ? kWord : (pmask >> last) & 1 ? kOther : kSpace;
      p += m;
      o += m;
      continue;
#else
      ascii_byte(*p++);
      continue;
#endif
    }

    std::uint32_t cp = 0;
    const int len = decode(p, end, cp);
    if (len == 0) {
      invalid = true;
      if constexpr (Lower) {
        prev_cased = false;  // a separator: neither Cased nor Case_Ignorable
        state_pos = p + 1;
      }
      begin_class(kSpace);
      out[o++] = ' ';
      ++p;
      continue;
    }
    const CpRecord& r = record_of(cp);
    const unsigned char* const next = p + len;
    if constexpr (!Lower) {
      const int cls = r.flags & 3;
      begin_class(cls);
      if (cls == kSpace) {
        out[o++] = ' ';
      } else {
        std::memcpy(out + o, p, static_cast<std::size_t>(len));
        o += static_cast<std::size_t>(len);
      }
    } else {
      if (cp == kCapitalSigma) {
        sync(p);
        const bool final_sigma = prev_cased && !next_cased(next);
        put_cp(kWord, final_sigma ? 0x3C2 : 0x3C3);
      } else if (r.flags & kFlagMulti) {
        const std::uint32_t* m = kLowerMulti[r.delta];
        for (std::uint32_t i = 1; i <= m[0]; ++i) put_cp(record_of(m[i]).flags & 3, m[i]);
      } else {
        const int cls = (r.flags >> kLowerClassShift) & 3;
        if (r.delta == 0 && cls != kSpace) {
          begin_class(cls);
          std::memcpy(out + o, p, static_cast<std::size_t>(len));
          o += static_cast<std::size_t>(len);
        } else {
          put_cp(cls, static_cast<std::uint32_t>(static_cast<std::int32_t>(cp) + r.delta));
        }
      }
      if (r.flags & kFlagIgnorable) {
        sync(p);
      } else {
        prev_cased = (r.flags & kFlagCased) != 0;
      }
      state_pos = next;
    }
    p = next;
  }
  if (prev != kSpace) ends[ne++] = static_cast<std::uint32_t>(o);
  ntoks_ = ns;
  return invalid;
}

}  // namespace skein::dsir
