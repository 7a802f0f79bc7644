// dsir's readers: JSONL and .jsonl.zst inputs, globs, and an input that changes under a checkpoint.
#include "tests/bad_inputs/catalogue.hpp"
#include "tests/bad_inputs/good_inputs.hpp"
#include "tests/e2e/cli_runner.hpp"

#include <sys/stat.h>

#include <filesystem>

namespace skein::bad_inputs {

namespace {

// The good raw corpus with `line` (its own newline included) as line `before` + 1, and `after` documents
// after it.
std::vector<std::string> dsir_raw_with_line(Workspace& ws, const std::string& line, int before = 40,
                                            int after = 40) {
  auto args = dsir_good(ws);
  std::string raw;
  for (int i = 1000; i < 1000 + before; ++i) raw += dsir_document(i);
  raw += line;
  for (int i = 1000 + before; i < 1000 + before + after; ++i) raw += dsir_document(i);
  test::write_file(ws.in + "/raw.jsonl", raw);
  return args;
}

std::string raw_zstd_text() {
  std::string raw;
  for (int i = 1000; i < 1200; ++i) raw += dsir_document(i);
  return raw;
}

std::vector<std::string> dsir_raw_zstd(Workspace& ws, const std::string& bytes) {
  auto args = dsir_good(ws);
  test::write_file(ws.in + "/raw.jsonl.zst", bytes);
  return with(args, "--dsir.raw=" + ws.in + "/raw.jsonl.zst");
}

}  // namespace

std::vector<Case> dsir_cases() {
  return {
      {"dsir",
       "empty_file",
       [](Workspace& ws) {
         auto args = dsir_good(ws);
         test::write_file(ws.in + "/raw.jsonl", "");
         return args;
       },
       65,
       {"{in}/raw.jsonl: file is empty"}},
      {"dsir",
       "malformed_json",
       [](Workspace& ws) { return dsir_raw_with_line(ws, "{\"text\": \"unterminated\n"); },
       65,
       {"{in}/raw.jsonl:41: not valid JSON"}},
      {"dsir",
       "malformed_json_while_others_read_on",
       // 4 KiB pieces: at 2 ranks the error is in rank 1's first pieces, while rank 0 still has pieces to
       // read (steps do not communicate; the ranks agree on the error at the runner's next agreement).
       [](Workspace& ws) {
         return with(dsir_raw_with_line(ws, "{\"text\": \"unterminated\n", 250, 250),
                     "--dsir.piece_size=4096");
       },
       65,
       {"{in}/raw.jsonl:251: not valid JSON"}},
      {"dsir",
       "missing_text_field",
       [](Workspace& ws) { return dsir_raw_with_line(ws, "{\"body\": \"no text\"}\n"); },
       65,
       {"{in}/raw.jsonl:41: no field 'text'"}},
      {"dsir",
       "binary_garbage_line",
       [](Workspace& ws) {
         return dsir_raw_with_line(ws, std::string("\x00\x01\x02\xff\xfe\x7f", 6) + "\n");
       },
       65,
       {"{in}/raw.jsonl:41: not valid JSON"}},
      {"dsir",
       "invalid_utf8_in_json_syntax",
       // Invalid UTF-8 inside a text value is read (as separators, and counted); outside strings the line
       // is not JSON.
       [](Workspace& ws) { return dsir_raw_with_line(ws, "{\"text\": \"ok\", \xff\xfe: 1}\n"); },
       65,
       {"{in}/raw.jsonl:41: not valid JSON"}},
      {"dsir",
       "huge_line",
       // 24 MB on one line that never closes its string: the error names the line without quoting it.
       [](Workspace& ws) {
         return dsir_raw_with_line(ws, "{\"text\": \"" + std::string(24 << 20, 'a') + "\n");
       },
       65,
       {"{in}/raw.jsonl:41: not valid JSON"}},
      {"dsir",
       "zst_not_compressed",
       [](Workspace& ws) { return dsir_raw_zstd(ws, raw_zstd_text()); },
       65,
       {"{in}/raw.jsonl.zst is named .zst but is not zstd-compressed"}},
      {"dsir",
       "zst_truncated",
       [](Workspace& ws) {
         const std::string frame = zstd_compress(raw_zstd_text());
         return dsir_raw_zstd(ws, frame.substr(0, frame.size() / 2));
       },
       65,
       {"{in}/raw.jsonl.zst", "truncated zstd stream"}},
      {"dsir",
       "zst_corrupt",
       [](Workspace& ws) {
         std::string frame = zstd_compress(raw_zstd_text());
         for (std::size_t i = 20; i < frame.size() - 8; i += 7) frame[i] = static_cast<char>(frame[i] ^ 0x5a);
         return dsir_raw_zstd(ws, frame);
       },
       65,
       {"{in}/raw.jsonl.zst"}},
      {"dsir",
       "input_is_a_directory",
       [](Workspace& ws) {
         auto args = dsir_good(ws);
         std::filesystem::create_directories(ws.in + "/folder.jsonl");
         return with(args, "--dsir.raw=" + ws.in + "/folder.jsonl");
       },
       65,
       {"dsir.raw: {in}/folder.jsonl is a directory, not a file"}},
      {"dsir",
       "glob_matches_nothing",
       [](Workspace& ws) { return with(dsir_good(ws), "--dsir.raw=" + ws.in + "/shards/*.jsonl"); },
       65,
       {"dsir.raw: pattern {in}/shards/*.jsonl matches no file"}},
      {"dsir",
       "unreadable_file",
       [](Workspace& ws) {
         auto args = dsir_good(ws);
         ::chmod((ws.in + "/raw.jsonl").c_str(), 0);
         ws.env.emplace_back("SKEIN_CATALOGUE_UNPRIVILEGED", "1");
         return args;
       },
       65,
       {"{in}/raw.jsonl", "Permission denied"},
       "",
       Needs::unprivileged},
      {"dsir",
       "truncated_since_checkpoint",
       [](Workspace& ws) { return dsir_good(ws); },
       65,
       {"{in}/raw.jsonl: changed since the checkpoint (", " bytes, ", " when it was written)"},
       "",
       Needs::nothing,
       [](Workspace& ws) { truncate_file(ws.in + "/raw.jsonl", file_size(ws.in + "/raw.jsonl") / 2); }},
      {"dsir",
       "edited_since_checkpoint",
       [](Workspace& ws) { return dsir_good(ws); },
       65,
       {"{in}/raw.jsonl: changed since the checkpoint (same size"},
       "",
       Needs::nothing,
       [](Workspace& ws) {
         // Same size, one document's text changed: only the recorded hash tells.
         std::string raw = test::read_file(ws.in + "/raw.jsonl");
         raw[raw.size() / 2] = raw[raw.size() / 2] == 'x' ? 'y' : 'x';
         test::write_file(ws.in + "/raw.jsonl", raw);
       }},
  };
}

}  // namespace skein::bad_inputs
