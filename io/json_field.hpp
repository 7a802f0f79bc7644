// Extracts one top-level string field from a JSON line with simdjson On-Demand, tolerating invalid UTF-8.
#pragma once

#include "io/jsonl_reader.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace skein::io {

// One reader per thread; it reuses its simdjson parser and buffers across lines (no per-line allocation
// once warmed up). Lines from JsonlShard are parsed in place (they carry simdjson's padding).
class JsonFieldReader {
 public:
  enum class Status {
    ok,             // `out` holds the unescaped value
    bad_json,       // not a JSON object, or malformed; error_message() says why
    missing_field,  // a JSON object without the field
    not_a_string,   // the field's value is not a string
    empty_line,     // nothing but whitespace (the caller skips it)
  };

  explicit JsonFieldReader(std::string field);
  ~JsonFieldReader();
  JsonFieldReader(JsonFieldReader&&) noexcept;
  JsonFieldReader& operator=(JsonFieldReader&&) noexcept;

  // `out` = the unescaped string value of the top-level key (the last one, if the key is repeated, as
  // Python's json does). A trailing '\r' is ignored. Invalid UTF-8 bytes (overlongs, surrogates,
  // > U+10FFFF, truncated sequences, stray continuation bytes) are each replaced by a space and the line
  // parsed again; invalid_utf8() then says so. The whole line is validated (other fields too, and no
  // trailing content), except that integers beyond 64 bits are accepted, as Python's json does.
  Status read(const Line& line, std::string& out) { return read(line.bytes, line.padded_end, out); }
  // `padded_end`: end of readable memory after `bytes` (copied first if that leaves less than
  // simdjson::SIMDJSON_PADDING = 64 bytes).
  Status read(std::string_view bytes, const char* padded_end, std::string& out);
  // Any bytes (copied to a padded buffer).
  Status read(std::string_view bytes, std::string& out) { return read(bytes, nullptr, out); }

  // Readable bytes a line needs past its end to be parsed in place: simdjson::SIMDJSON_PADDING (asserted in
  // json_field.cpp), named here so that callers need not include simdjson.h, which nvcc cannot compile.
  static constexpr std::size_t kPadding = 64;

  // Whether the last read() replaced invalid UTF-8 bytes.
  bool invalid_utf8() const { return invalid_utf8_; }
  // Why the last read() returned bad_json (simdjson's message, or ours).
  const std::string& error_message() const { return error_; }
  const std::string& field() const { return field_; }

  static const char* status_name(Status status);
  // Replaces each byte of [data, data + size) that is not part of a valid UTF-8 sequence with ' ';
  // returns how many were replaced.
  static std::size_t blank_invalid_utf8(char* data, std::size_t size);

 private:
  // simdjson stays out of this header: its parser's layout depends on compile definitions
  // (SIMDJSON_THREADS_ENABLED), which every includer would otherwise have to match.
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string field_;
  bool invalid_utf8_ = false;
  std::string error_;
};

}  // namespace skein::io
