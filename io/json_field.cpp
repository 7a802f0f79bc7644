#include "io/json_field.hpp"

#include <simdjson.h>

#include <cstring>

namespace skein::io {

namespace {

constexpr std::size_t padding = simdjson::SIMDJSON_PADDING;
static_assert(JsonFieldReader::kPadding == padding, "kPadding must be simdjson's padding");

bool blank(std::string_view text) {
  for (const char c : text) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

bool continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Length of the valid UTF-8 sequence at p (0 if the byte there does not start one). Second-byte ranges
// follow Unicode Table 3-7, which excludes overlongs, surrogates and code points above U+10FFFF.
std::size_t valid_sequence(const unsigned char* p, std::size_t left) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  std::size_t length = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;  // 0x80-0xC1 (continuation or overlong lead), 0xF5-0xFF
  }
  if (left < length || p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (!continuation(p[i])) return 0;
  }
  return length;
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? followed only by whitespace.
bool json_number(std::string_view token) {
  std::size_t i = 0;
  const std::size_t n = token.size();
  auto digit = [&](std::size_t k) { return k < n && token[k] >= '0' && token[k] <= '9'; };
  auto digits = [&] {
    const std::size_t start = i;
    while (digit(i)) ++i;
    return i > start;
  };
  if (i < n && token[i] == '-') ++i;
  if (i < n && token[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < n && token[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < n && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < n && (token[i] == '+' || token[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return blank(token.substr(i));
}

// Walks a value to its end so malformed JSON anywhere in the line is caught (On-Demand alone only checks
// what it is asked for; skipping a value just counts brackets). Large integers are valid JSON.
simdjson::error_code validate(simdjson::ondemand::value& value) {
  using namespace simdjson;
  ondemand::json_type type;
  if (auto error = value.type().get(type)) return error;
  switch (type) {
    case ondemand::json_type::array: {
      ondemand::array array;
      if (auto error = value.get_array().get(array)) return error;
      for (auto element : array) {
        ondemand::value item;
        if (auto error = element.get(item)) return error;
        if (auto error = validate(item)) return error;
      }
      return SUCCESS;
    }
    case ondemand::json_type::object: {
      ondemand::object object;
      if (auto error = value.get_object().get(object)) return error;
      for (auto field : object) {
        std::string_view key;
        if (auto error = field.unescaped_key().get(key)) return error;
        ondemand::value item;
        if (auto error = field.value().get(item)) return error;
        if (auto error = validate(item)) return error;
      }
      return SUCCESS;
    }
    case ondemand::json_type::number: {
      // Checked against the JSON grammar by hand: simdjson 3.0 rejects integers beyond 64 bits.
      return json_number(value.raw_json_token()) ? SUCCESS : NUMBER_ERROR;
    }
    case ondemand::json_type::string: {
      std::string_view text;
      return value.get_string().get(text);
    }
    case ondemand::json_type::boolean: {
      bool flag = false;
      return value.get_bool().get(flag);
    }
    case ondemand::json_type::null: {
      bool is_null = false;
      if (auto error = value.is_null().get(is_null)) return error;
      return is_null ? SUCCESS : N_ATOM_ERROR;
    }
  }
  return INCORRECT_TYPE;
}

}  // namespace

struct JsonFieldReader::Impl {
  simdjson::ondemand::parser parser;
  std::string scratch;  // padded copy for unpadded input and for the UTF-8 repair
  simdjson::error_code last_error = simdjson::SUCCESS;

  Status parse(JsonFieldReader& reader, const char* data, std::size_t size, std::size_t capacity,
               std::string& out);
  Status bad(JsonFieldReader& reader, simdjson::error_code error) {
    reader.error_ = simdjson::error_message(error);
    last_error = error;
    return Status::bad_json;
  }
  Status bad(JsonFieldReader& reader, const char* reason) {
    reader.error_ = reason;
    last_error = simdjson::TAPE_ERROR;
    return Status::bad_json;
  }
};

JsonFieldReader::JsonFieldReader(std::string field)
    : impl_(std::make_unique<Impl>()), field_(std::move(field)) {}
JsonFieldReader::~JsonFieldReader() = default;
JsonFieldReader::JsonFieldReader(JsonFieldReader&&) noexcept = default;
JsonFieldReader& JsonFieldReader::operator=(JsonFieldReader&&) noexcept = default;

const char* JsonFieldReader::status_name(Status status) {
  switch (status) {
    case Status::ok:
      return "ok";
    case Status::bad_json:
      return "bad JSON";
    case Status::missing_field:
      return "missing field";
    case Status::not_a_string:
      return "not a string";
    case Status::empty_line:
      return "empty line";
  }
  return "?";
}

std::size_t JsonFieldReader::blank_invalid_utf8(char* data, std::size_t size) {
  auto* p = reinterpret_cast<unsigned char*>(data);
  std::size_t replaced = 0;
  for (std::size_t i = 0; i < size;) {
    const std::size_t length = valid_sequence(p + i, size - i);
    if (length == 0) {
      p[i++] = ' ';
      ++replaced;
    } else {
      i += length;
    }
  }
  return replaced;
}

namespace {

// When `bytes` holds a complete JSON object followed by something other than white space (or holds a
// NUL byte), what to tell the user; "" otherwise. Only runs on lines that failed to parse.
std::string describe_trailing_bytes(std::string_view bytes) {
  const std::size_t nul = bytes.find('\0');
  std::size_t start = 0;
  while (start < bytes.size() && (bytes[start] == ' ' || bytes[start] == '\t')) ++start;
  std::size_t end = std::string_view::npos;
  if (start < bytes.size() && bytes[start] == '{') {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (std::size_t i = start; i < bytes.size() && end == std::string_view::npos; ++i) {
      const char c = bytes[i];
      if (in_string) {
        if (escaped)
          escaped = false;
        else if (c == '\\')
          escaped = true;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        end = i + 1;
      }
    }
  }
  if (end != std::string_view::npos) {
    std::size_t next = end;
    while (next < bytes.size() && (bytes[next] == ' ' || bytes[next] == '\t')) ++next;
    if (next < bytes.size()) {
      if (bytes[next] == '\0')
        return "a NUL byte after the JSON object (column " + std::to_string(next + 1) + ")";
      std::string shown(bytes.substr(next, 20));
      for (auto& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20) c = '?';
      }
      return "content after the JSON object at column " + std::to_string(next + 1) + ": '" + shown + "'";
    }
  }
  if (nul != std::string_view::npos) return "a NUL byte at column " + std::to_string(nul + 1);
  return "";
}

}  // namespace

JsonFieldReader::Status JsonFieldReader::read(std::string_view bytes, const char* padded_end,
                                              std::string& out) {
  invalid_utf8_ = false;
  error_.clear();
  impl_->last_error = simdjson::SUCCESS;
  std::string& scratch = impl_->scratch;
  out.clear();
  if (!bytes.empty() && bytes.back() == '\r') bytes.remove_suffix(1);
  // A UTF-8 byte-order mark (Windows editors write one at the start of a file) is not part of the JSON.
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xEF\xBB\xBF") == 0) bytes.remove_prefix(3);
  if (blank(bytes)) return Status::empty_line;

  const char* data = bytes.data();
  std::size_t capacity = padded_end == nullptr ? 0 : static_cast<std::size_t>(padded_end - bytes.data());
  if (capacity < bytes.size() + padding) {
    scratch.resize(bytes.size() + padding);
    std::memcpy(scratch.data(), bytes.data(), bytes.size());
    data = scratch.data();
    capacity = scratch.size();
  }
  Status status = impl_->parse(*this, data, bytes.size(), capacity, out);
  if (status == Status::bad_json && impl_->last_error != simdjson::UTF8_ERROR) {
    // simdjson's "ended early" also covers a complete object followed by more bytes; say which it is.
    const std::string better = describe_trailing_bytes(bytes);
    if (!better.empty()) error_ = better;
  }
  if (status != Status::bad_json || impl_->last_error != simdjson::UTF8_ERROR) return status;

  // simdjson rejects invalid UTF-8 outright; the job treats such bytes as separators, so blank them.
  if (data != scratch.data()) {
    scratch.resize(bytes.size() + padding);
    std::memcpy(scratch.data(), bytes.data(), bytes.size());
  }
  invalid_utf8_ = blank_invalid_utf8(scratch.data(), bytes.size()) > 0;
  error_.clear();
  return impl_->parse(*this, scratch.data(), bytes.size(), scratch.size(), out);
}

JsonFieldReader::Status JsonFieldReader::Impl::parse(JsonFieldReader& reader, const char* data,
                                                     std::size_t size, std::size_t capacity,
                                                     std::string& out) {
  using namespace simdjson;
  ondemand::document doc;
  if (auto error = parser.iterate(data, size, capacity).get(doc)) return bad(reader, error);
  ondemand::object object;
  if (auto error = doc.get_object().get(object)) {
    return error == INCORRECT_TYPE ? bad(reader, "the line is not a JSON object") : bad(reader, error);
  }
  bool found = false;
  bool is_string = false;
  for (auto field : object) {
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return bad(reader, error);
    ondemand::value value;
    if (auto error = field.value().get(value)) return bad(reader, error);
    ondemand::json_type type;
    if (auto error = value.type().get(type)) return bad(reader, error);
    if (key != reader.field_ || type != ondemand::json_type::string) {
      if (auto error = validate(value)) return bad(reader, error);
      if (key == reader.field_) {
        found = true;
        is_string = false;
        out.clear();
      }
      continue;
    }
    found = true;
    is_string = true;
    std::string_view text;
    if (auto error = value.get_string().get(text)) return bad(reader, error);  // e.g. a lone surrogate escape
    out.assign(text.data(), text.size());
  }
  // A finished object leaves the iterator at the end; anything else is trailing content.
  if (!doc.current_location().error()) return bad(reader, "trailing content after the JSON object");
  if (!found) return Status::missing_field;
  return is_string ? Status::ok : Status::not_a_string;
}

}  // namespace skein::io
