#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace skein::dsir {

// Splits text into the DSIR reference's tokens: Python 3.11 str.lower() (optional), then NLTK WordPunct
// `\w+|[^\w\s]+` with Python's Unicode \w (isalnum or '_') and \s (isspace).
//
// The Unicode tables are generated from Python 3.11 (Unicode 14.0) by gen_unicode_tables.py, so the tokens
// equal `re.findall(r"\w+|[^\w\s]+", text.lower())` for every valid UTF-8 input, including full lowercase
// mappings (U+0130 becomes "i\u0307") and the Final_Sigma rule for U+03A3. No library does this: ICU's and
// PCRE's \w include combining marks, Python's does not.
//
// Tokens live in an internal buffer, in order, and two tokens that stood one whitespace character (or one
// invalid byte) apart in the input stand exactly one ' ' apart there, so "a b" is the view spanning both;
// NgramHasher uses that to copy an n-gram in one move.
class Tokenizer {
 public:
  explicit Tokenizer(bool lowercase);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Tokens are views into an internal buffer, valid until the next call. Bytes that are not valid
  // UTF-8 act as separators (never part of a token). Returns true if `text` held invalid UTF-8.
  bool tokenize(std::string_view text, std::vector<std::string_view>& tokens);

  bool lowercase() const { return lowercase_; }

  // The Unicode version of the generated tables ("14.0.0").
  static const char* unicode_version();

 private:
  template <bool Lower>
  bool run(std::string_view text);

  void grow_bounds(std::size_t min_cap, std::size_t nstarts, std::size_t nends);

  bool lowercase_;
  std::unique_ptr<char[]> buf_;  // the (lowercased) text; tokens point into it
  std::size_t buf_cap_ = 0;
  std::unique_ptr<std::uint32_t[]> starts_;  // token i is buf_[starts_[i], ends_[i])
  std::unique_ptr<std::uint32_t[]> ends_;
  std::size_t bounds_cap_ = 0;
  std::size_t ntoks_ = 0;
};

}  // namespace skein::dsir
