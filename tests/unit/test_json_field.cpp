// JsonFieldReader: extracting one string field from JSON lines, and what happens with bad input.
#include "io/json_field.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using skein::io::JsonFieldReader;
using Status = JsonFieldReader::Status;

struct Result {
  Status status;
  std::string text;
  bool invalid_utf8;
  std::string error;
};

Result read(JsonFieldReader& reader, const std::string& line) {
  Result r;
  r.status = reader.read(line, r.text);
  r.invalid_utf8 = reader.invalid_utf8();
  r.error = reader.error_message();
  return r;
}

TEST(JsonField, ExtractsTheTopLevelString) {
  JsonFieldReader reader("text");
  auto r = read(reader, R"({"id": 7, "text": "hello world", "genre": "news"})");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "hello world");
  EXPECT_FALSE(r.invalid_utf8);
  EXPECT_TRUE(r.error.empty());

  // A nested "text" is not the top-level field.
  r = read(reader, R"({"meta": {"text": "nested"}, "text": "top", "list": [{"text": "x"}]})");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "top");

  r = read(reader, R"(  {"text":""}  )");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "");
}

TEST(JsonField, UnescapesStrings) {
  JsonFieldReader reader("text");
  auto r = read(reader, R"({"text": "a\"b\\c\/d\ne\tf\u00e9\ud83d\ude00"})");
  ASSERT_EQ(r.status, Status::ok) << r.error;
  EXPECT_EQ(r.text, "a\"b\\c/d\ne\tf\xc3\xa9\xf0\x9f\x98\x80");
  // Raw UTF-8 passes through untouched and is not flagged.
  r = read(reader, "{\"text\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
  ASSERT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_FALSE(r.invalid_utf8);
  // The key is compared unescaped.
  r = read(reader, R"({"te\u0078t": "escaped key"})");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "escaped key");
}

TEST(JsonField, RepeatedKeyTakesTheLastLikePython) {
  JsonFieldReader reader("text");
  auto r = read(reader, R"({"text": "first", "id": 1, "text": "second"})");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "second");
  r = read(reader, R"({"text": "first", "text": 3})");
  EXPECT_EQ(r.status, Status::not_a_string);
}

TEST(JsonField, MissingField) {
  JsonFieldReader reader("text");
  EXPECT_EQ(read(reader, R"({"id": 1, "body": "x"})").status, Status::missing_field);
  EXPECT_EQ(read(reader, R"({"meta": {"text": "nested only"}})").status, Status::missing_field);
  EXPECT_EQ(read(reader, R"({})").status, Status::missing_field);
  EXPECT_EQ(read(reader, R"({"Text": "case matters"})").status, Status::missing_field);
}

TEST(JsonField, NotAString) {
  JsonFieldReader reader("text");
  for (const char* line : {R"({"text": 5})", R"({"text": null})", R"({"text": true})", R"({"text": ["a"]})",
                           R"({"text": {"a": "b"}})", R"({"text": -1.5e3, "id": "x"})"}) {
    std::string out = "stale";
    EXPECT_EQ(reader.read(line, out), Status::not_a_string) << line;
    EXPECT_TRUE(out.empty()) << line;
  }
}

TEST(JsonField, BadJsonHasAReason) {
  JsonFieldReader reader("text");
  for (const char* line :
       {R"({"text": "abc")", R"({"text": "abc"} trailing)", R"({"text": "abc"}{})", "not json", R"([1, 2])",
        R"("just a string")", R"(42)", R"({"text" "abc"})", R"({"text": "abc",})",
        R"({"a": [1, 2}, "text": "x"})", R"({"text": "unterminated)",
        // Malformed values in other fields are caught too.
        R"({"id": tru, "text": "x"})", R"({"id": nul, "text": "x"})", R"({"id": 01, "text": "x"})",
        R"({"meta": {"a": [1, {"b": 1.e5}]}, "text": "x"})", R"({"text": "x", "bad": "\q"})",
        R"({"text": 5, "after": [}"})"}) {
    const auto r = read(reader, line);
    EXPECT_EQ(r.status, Status::bad_json) << line;
    EXPECT_FALSE(r.error.empty()) << line;
  }
  // Valid values of every kind in other fields, big integers included (Python accepts them).
  const auto r = read(
      reader, R"({"n": [1, -2.5e-3, true, false, null, {"k": [[]]}], "big": 123456789012345678901234567890,)"
              R"( "s": "é", "text": "ok"})");
  EXPECT_EQ(r.status, Status::ok) << r.error;
  EXPECT_EQ(r.text, "ok");
  // The reader recovers after an error.
  EXPECT_EQ(read(reader, R"({"text": "fine"})").text, "fine");
}

TEST(JsonField, LoneSurrogateEscapesAreBadJsonNotACrash) {
  JsonFieldReader reader("text");
  for (const char* line : {R"({"text": "a\ud800b"})", R"({"text": "a\udc00b"})", R"({"text": "\ud800"})",
                           R"({"text": "\ud800\u0041"})"}) {
    const auto r = read(reader, line);
    EXPECT_EQ(r.status, Status::bad_json) << line;
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(JsonField, InvalidUtf8BytesBecomeSpaces) {
  JsonFieldReader reader("text");
  struct Case {
    std::string in;
    std::string out;
  };
  const Case cases[] = {
      {"a\xff"
       "b",
       "a b"},  // never valid
      {"a\xc0\xaf"
       "b",
       "a  b"},  // overlong '/'
      {"a\xe0\x80\xaf"
       "b",
       "a   b"},  // overlong 3-byte
      {"a\xed\xa0\x80"
       "b",
       "a   b"},  // UTF-8-encoded surrogate U+D800
      {"a\xf4\x90\x80\x80"
       "b",
       "a    b"},  // U+110000
      {"a\xe2\x82"
       "b",
       "a  b"},  // truncated 3-byte sequence
      {"a\x80"
       "b",
       "a b"},                                        // stray continuation byte
      {"\xc3\xa9\xff\xc3\xa9", "\xc3\xa9 \xc3\xa9"},  // valid neighbours survive
      {"end\xf0\x9f\x98", "end   "},                  // truncated at the end of the string
  };
  for (const auto& c : cases) {
    const auto r = read(reader, "{\"id\": 1, \"text\": \"" + c.in + "\"}");
    ASSERT_EQ(r.status, Status::ok) << r.error;
    EXPECT_EQ(r.text, c.out);
    EXPECT_TRUE(r.invalid_utf8);
  }
  // Invalid bytes in another field still count as invalid, and the text field is intact.
  auto r = read(reader, "{\"title\": \"x\xfe\", \"text\": \"fine\"}");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "fine");
  EXPECT_TRUE(r.invalid_utf8);
  // The flag resets on the next line.
  r = read(reader, R"({"text": "clean"})");
  EXPECT_FALSE(r.invalid_utf8);
  // Invalid UTF-8 in a line that is bad JSON anyway stays bad JSON.
  r = read(reader, "{\"text\": \"x\xff\"");
  EXPECT_EQ(r.status, Status::bad_json);
}

TEST(JsonField, BlankInvalidUtf8CountsReplacements) {
  std::string s = "ok \xc3\xa9 \xff\xfe \xe2\x82";
  EXPECT_EQ(JsonFieldReader::blank_invalid_utf8(s.data(), s.size()), 4u);
  EXPECT_EQ(s, "ok \xc3\xa9      ");
  std::string valid = "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xee\x80\x80\x7f";
  EXPECT_EQ(JsonFieldReader::blank_invalid_utf8(valid.data(), valid.size()), 0u);
}

TEST(JsonField, CrLfAndEmptyLines) {
  JsonFieldReader reader("text");
  auto r = read(reader, "{\"text\": \"windows\"}\r");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.text, "windows");
  EXPECT_EQ(read(reader, "").status, Status::empty_line);
  EXPECT_EQ(read(reader, "\r").status, Status::empty_line);
  EXPECT_EQ(read(reader, "   \t ").status, Status::empty_line);
  // Only the last '\r' is stripped; another one before it is JSON whitespace.
  EXPECT_EQ(read(reader, "{\"text\": \"x\"}\r\r").status, Status::ok);
}

TEST(JsonField, ParsesInPlaceFromAPaddedBuffer) {
  // The way JsonlShard hands lines over: a view into a larger buffer, followed by other lines.
  const std::string line1 = R"({"text": "first line"})";
  std::string buffer = line1 + "\n" + R"({"text": "second"})" + "\n";
  buffer.resize(buffer.size() + JsonFieldReader::kPadding, 'x');
  skein::io::Line line;
  line.bytes = std::string_view(buffer.data(), line1.size());
  line.padded_end = buffer.data() + buffer.size();
  JsonFieldReader reader("text");
  std::string out;
  EXPECT_EQ(reader.read(line, out), Status::ok);
  EXPECT_EQ(out, "first line");
  // Too little padding: copied first, same answer.
  line.padded_end = buffer.data() + line1.size() + 1;
  EXPECT_EQ(reader.read(line, out), Status::ok);
  EXPECT_EQ(out, "first line");
}

TEST(JsonField, LongValuesAndReuse) {
  JsonFieldReader reader("text");
  std::string text(1 << 20, 'a');
  for (std::size_t i = 0; i < text.size(); i += 7) text[i] = ' ';
  std::string out;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(reader.read("{\"text\": \"" + text + "\", \"n\": " + std::to_string(i) + "}", out), Status::ok);
    EXPECT_EQ(out, text);
    EXPECT_EQ(reader.read(R"({"text": "short"})", out), Status::ok);
    EXPECT_EQ(out, "short");
  }
}

TEST(JsonField, OtherFieldNames) {
  JsonFieldReader reader("contents");
  std::string out;
  EXPECT_EQ(reader.read(R"({"text": "no", "contents": "yes"})", out), Status::ok);
  EXPECT_EQ(out, "yes");
  EXPECT_EQ(reader.field(), "contents");
  EXPECT_STREQ(JsonFieldReader::status_name(Status::missing_field), "missing field");
}

}  // namespace

// What users meet in files made on other systems: a byte-order mark, and bytes after a complete object.
TEST(JsonField, ByteOrderMarkAndTrailingBytes) {
  JsonFieldReader reader("text");
  auto r = read(reader, "\xEF\xBB\xBF{\"text\": \"first line of a Windows file\"}");
  EXPECT_EQ(r.status, Status::ok) << r.error;
  EXPECT_EQ(r.text, "first line of a Windows file");
  r = read(reader, R"({"text": "a {brace} \"quoted\""} garbage here)");
  EXPECT_EQ(r.status, Status::bad_json);
  EXPECT_EQ(r.error, "content after the JSON object at column 34: 'garbage here'");
  r = read(reader, std::string("{\"text\": \"x\"}\0", 14));
  EXPECT_EQ(r.status, Status::bad_json);
  EXPECT_EQ(r.error, "a NUL byte after the JSON object (column 14)");
  r = read(reader, R"({"text": "unterminated)");
  EXPECT_EQ(r.status, Status::bad_json);
  EXPECT_EQ(r.error.find("content after"), std::string::npos) << r.error;
}
