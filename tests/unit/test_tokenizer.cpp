// Tokenizer parity with the DSIR reference (Python 3.11 `re.findall(r"\w+|[^\w\s]+", text.lower())`), from
// the goldens written by tests/golden/make_tokenizer_goldens.py, plus invalid UTF-8 handling, which the
// reference has no answer for (it crashes).
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "jobs/dsir/tokenizer.hpp"

#ifndef SKEIN_TEST_DATA_DIR
#error "SKEIN_TEST_DATA_DIR must name tests/data"
#endif

namespace {

using skein::dsir::Tokenizer;
using Tokens = std::vector<std::string>;

struct Case {
  bool lower = false;
  std::string text;
  Tokens tokens;
  int line = 0;
};

// Just enough JSON for the goldens' fixed schema: {"lower": bool, "text": str, "tokens": [str, ...]}.
class LineParser {
 public:
  explicit LineParser(std::string_view s) : s_(s) {}

  Case parse() {
    Case c;
    expect('{');
    for (;;) {
      const std::string key = string();
      expect(':');
      if (key == "lower") {
        c.lower = boolean();
      } else if (key == "text") {
        c.text = string();
      } else if (key == "tokens") {
        expect('[');
        if (!consume(']')) {
          do c.tokens.push_back(string());
          while (consume(','));
          expect(']');
        }
      } else {
        throw std::runtime_error("unknown key " + key);
      }
      if (consume('}')) return c;
      expect(',');
    }
  }

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool consume(char ch) {
    ws();
    if (i_ < s_.size() && s_[i_] == ch) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char ch) {
    if (!consume(ch)) throw std::runtime_error(std::string("expected ") + ch + " at " + std::to_string(i_));
  }
  bool boolean() {
    ws();
    if (s_.substr(i_, 4) == "true") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "false") {
      i_ += 5;
      return false;
    }
    throw std::runtime_error("expected a boolean");
  }
  unsigned hex4() {
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_.at(i_++);
      v = v * 16 + static_cast<unsigned>(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    return v;
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      const char ch = s_.at(i_++);
      if (ch == '"') return out;
      if (ch != '\\') {
        out += ch;
        continue;
      }
      const char e = s_.at(i_++);
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          out += e;  // \" \\ \/
      }
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::vector<Case> load_cases() {
  const std::string path = std::string(SKEIN_TEST_DATA_DIR) + "/tokenizer_cases.jsonl";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<Case> cases;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    Case c = LineParser(line).parse();
    c.line = n;
    cases.push_back(std::move(c));
  }
  return cases;
}

Tokens run(Tokenizer& tok, std::string_view text, bool* invalid = nullptr) {
  std::vector<std::string_view> views;
  const bool bad = tok.tokenize(text, views);
  if (invalid) *invalid = bad;
  return Tokens(views.begin(), views.end());
}

Tokens run(bool lower, std::string_view text, bool* invalid = nullptr) {
  Tokenizer tok(lower);
  return run(tok, text, invalid);
}

TEST(Tokenizer, UnicodeVersionIsPython311s) {
  EXPECT_STREQ(Tokenizer::unicode_version(), "14.0.0");
}

TEST(Tokenizer, MatchesPythonGoldens) {
  const std::vector<Case> cases = load_cases();
  ASSERT_GT(cases.size(), 500u);
  Tokenizer lower(true), keep(false);
  int lower_cases = 0, keep_cases = 0;
  for (const Case& c : cases) {
    Tokenizer& tok = c.lower ? lower : keep;  // reused across cases, as the job does
    (c.lower ? lower_cases : keep_cases)++;
    bool invalid = true;
    EXPECT_EQ(run(tok, c.text, &invalid), c.tokens) << "golden line " << c.line << ": " << c.text;
    EXPECT_FALSE(invalid) << "golden line " << c.line;
  }
  EXPECT_GT(lower_cases, 100);
  EXPECT_GT(keep_cases, 100);
}

// Whitespace is neither Cased nor Case_Ignorable and never part of a token, so padding a text with it, or
// repeating it after a space, must not change its tokens. This moves every golden across the 64-byte blocks
// of the vector path and through its short-tail path.
TEST(Tokenizer, GoldensAreIndependentOfPositionAndLength) {
  Tokenizer lower(true), keep(false);
  for (const Case& c : load_cases()) {
    Tokenizer& tok = c.lower ? lower : keep;
    Tokens twice = c.tokens;
    twice.insert(twice.end(), c.tokens.begin(), c.tokens.end());
    EXPECT_EQ(run(tok, c.text + "\n" + c.text), twice) << "golden line " << c.line;
    for (std::size_t pad = 1; pad < 70; pad += 13) {
      const std::string ws(pad, ' ');
      EXPECT_EQ(run(tok, ws + c.text + "\t"), c.tokens) << "golden line " << c.line << " pad " << pad;
    }
  }
}

TEST(Tokenizer, ReferenceExamples) {
  EXPECT_EQ(run(true, "Alice went to the store"), (Tokens{"alice", "went", "to", "the", "store"}));
  EXPECT_EQ(run(false, "Alice went to the store"), (Tokens{"Alice", "went", "to", "the", "store"}));
  EXPECT_EQ(run(true, "()()($#%@?)@(#(*"), (Tokens{"()()($#%@?)@(#(*"}));
  EXPECT_EQ(run(true, "Atlanta's \"recent\""), (Tokens{"atlanta", "'", "s", "\"", "recent", "\""}));
  // Combining marks are not \w in Python: the reference splits Devanagari words apart.
  EXPECT_EQ(run(true, "हिन्दी"), (Tokens{"ह", "ि", "न", "्", "द", "ी"}));
  // Full lowercase mapping: U+0130 becomes i + U+0307, and U+0307 is not \w.
  EXPECT_EQ(run(true, "İstanbul"), (Tokens{"i", "\u0307", "stanbul"}));
  EXPECT_EQ(run(false, "İstanbul"), (Tokens{"İstanbul"}));
  EXPECT_EQ(run(true, "ΣΑΣ ὈΔΥΣΣΕΎΣ"), (Tokens{"σας", "ὀδυσσεύς"}));
  EXPECT_EQ(run(true, "a\u200bb"), (Tokens{"a", "\u200b", "b"}));  // ZWSP is not whitespace
  EXPECT_EQ(run(true, "a\u3000b\u0085c\u00a0d"), (Tokens{"a", "b", "c", "d"}));
  EXPECT_EQ(run(true, "x² ½ Ⅻ"), (Tokens{"x²", "½", "ⅻ"}));
  EXPECT_EQ(run(true, "日本語テキスト"), (Tokens{"日本語テキスト"}));
  EXPECT_EQ(run(true, ""), Tokens{});
  EXPECT_EQ(run(true, " \t\n"), Tokens{});
}

TEST(Tokenizer, InvalidUtf8BytesSeparateTokens) {
  struct Bad {
    std::string text;
    Tokens tokens;
  };
  const std::string ab = "ab", cd = "cd", x = "x", y = "y";
  const std::vector<Bad> bad = {
      {ab + "\xff" + cd, {"ab", "cd"}},
      {ab + "\x80" + cd, {"ab", "cd"}},                    // lone continuation byte
      {ab + "\xe2\x82", {"ab"}},                           // truncated 3-byte sequence at the end
      {std::string("\xe2\x82") + cd, {"cd"}},              // truncated before ASCII
      {ab + "\xf0\x9f\x98", {"ab"}},                       // truncated 4-byte sequence
      {x + "\xc0\xaf" + y, {"x", "y"}},                    // overlong '/'
      {x + "\xc1\xbf" + y, {"x", "y"}},                    // overlong
      {x + "\xe0\x80\xaf" + y, {"x", "y"}},                // overlong 3-byte
      {x + "\xf0\x80\x80\xaf" + y, {"x", "y"}},            // overlong 4-byte
      {x + "\xed\xa0\x80" + y, {"x", "y"}},                // UTF-8-encoded surrogate U+D800
      {x + "\xed\xbf\xbf" + y, {"x", "y"}},                // U+DFFF
      {x + "\xf4\x90\x80\x80" + y, {"x", "y"}},            // above U+10FFFF
      {x + "\xf5\x80\x80\x80" + y, {"x", "y"}},            // no such lead byte
      {".\xff.", {".", "."}},                              // splits punctuation runs too
      {"\xc3\xa9\xff\xc3\xa9", {"\xc3\xa9", "\xc3\xa9"}},  // between valid 2-byte sequences
      {std::string("\xc3") + "A", {"a"}},                  // a lead byte cut short before ASCII
      {"\xff\xfe\xfd", {}},
  };
  for (const Bad& b : bad) {
    bool invalid = false;
    EXPECT_EQ(run(true, b.text, &invalid), b.tokens) << b.text;
    EXPECT_TRUE(invalid) << b.text;
    Tokens kept = b.tokens;
    if (b.text == std::string("\xc3") + "A") kept = {"A"};
    EXPECT_EQ(run(false, b.text, &invalid), kept) << b.text;
    EXPECT_TRUE(invalid) << b.text;
  }
  // Valid edges of the ranges above stay valid.
  const std::vector<std::string> good = {"\xc2\x80",         "\xdf\xbf",        "\xe0\xa0\x80",
                                         "\xed\x9f\xbf",     "\xee\x80\x80",    "\xf0\x90\x80\x80",
                                         "\xf4\x8f\xbf\xbf", "\xf0\x9f\x98\x80"};
  for (const std::string& g : good) {
    bool invalid = true;
    run(true, "a" + g + "b", &invalid);
    EXPECT_FALSE(invalid) << g;
  }
  EXPECT_EQ(run(true, "\xf0\x9f\x98\x80"), (Tokens{"\xf0\x9f\x98\x80"}));
}

TEST(Tokenizer, InvalidBytesEndTheFinalSigmaContextLikeSpace) {
  EXPECT_EQ(run(true, "ΑΣ\xff"), run(true, "ΑΣ "));
  EXPECT_EQ(run(true, "ΑΣ\xff"), (Tokens{"ας"}));
  EXPECT_EQ(run(true, "Α\xffΣ"), (Tokens{"α", "σ"}));
  EXPECT_EQ(run(true, std::string("ΑΣ\xff") + "Α"), (Tokens{"ας", "α"}));
}

TEST(Tokenizer, InvalidBytesInLongAsciiText) {
  std::string text, expected_joined;
  Tokens expected;
  for (int i = 0; i < 200; ++i) {
    text += "Word" + std::to_string(i) + (i % 7 == 0 ? "\xff" : i % 5 == 0 ? "\xe2\x82" : " ");
    expected.push_back("word" + std::to_string(i));
  }
  bool invalid = false;
  EXPECT_EQ(run(true, text, &invalid), expected);
  EXPECT_TRUE(invalid);
}

// Tokens that stood one separator apart sit one ' ' apart in the buffer: NgramHasher hashes such bigrams in
// place.
TEST(Tokenizer, AdjacentTokensShareOneSpaceInTheBuffer) {
  Tokenizer tok(true);
  std::vector<std::string_view> v;
  tok.tokenize("Alice\twent\xffto the\u3000store, again", v);
  ASSERT_EQ(v.size(), 7u);
  for (std::size_t i = 0; i + 1 < v.size(); ++i) {
    const char* gap = v[i].data() + v[i].size();
    if (i == 4) {
      EXPECT_EQ(gap, v[i + 1].data());  // "store" "," touch
    } else {
      EXPECT_EQ(gap + 1, v[i + 1].data()) << i;
      EXPECT_EQ(*gap, ' ') << i;
    }
  }
  EXPECT_EQ(std::string_view(v[0].data(), v[1].data() + v[1].size() - v[0].data()), "alice went");
}

TEST(Tokenizer, TokensStayValidUntilTheNextCall) {
  Tokenizer tok(true);
  std::vector<std::string_view> a;
  const std::string long_text(10000, 'x');
  tok.tokenize("short text", a);
  EXPECT_EQ(Tokens(a.begin(), a.end()), (Tokens{"short", "text"}));
  tok.tokenize(long_text + " y", a);  // grows the buffer
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].size(), 10000u);
  EXPECT_EQ(a[1], "y");
}

// Many tokens in one text: the token array grows while the vector path is running.
TEST(Tokenizer, ManyShortTokens) {
  std::string text;
  Tokens expected;
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      text += "a.";
      expected.push_back("a");
      expected.push_back(".");
    } else if (kind == 1) {
      text += "Bé ";
      expected.push_back("bé");
    } else if (kind == 2) {
      text += "_ ";
      expected.push_back("_");
    } else {
      text += "ΣΣ, ";
      expected.push_back("σς");
      expected.push_back(",");
    }
  }
  EXPECT_EQ(run(true, text), expected);
}

}  // namespace
