// Config mistakes in INI files and on the command line: exit 2, naming the file, key and value.
#include "tests/bad_inputs/catalogue.hpp"
#include "tests/bad_inputs/good_inputs.hpp"
#include "tests/e2e/cli_runner.hpp"

namespace skein::bad_inputs {

namespace {

// dsir's good inputs with an INI file holding `ini` in place of the command-line options.
std::vector<std::string> dsir_with_ini(Workspace& ws, const std::string& ini) {
  dsir_good(ws);
  test::write_file(ws.in + "/my.ini", ini);
  return {"dsir", "--config", ws.in + "/my.ini"};
}

std::string good_ini(const std::string& in) {
  return "[dsir]\ntarget = " + in + "/target.jsonl\nraw = " + in +
         "/raw.jsonl\nnum_select = 5\nmin_tokens = 1\n";
}

}  // namespace

std::vector<Case> config_cases() {
  return {
      {"config",
       "unknown_key_in_ini",
       [](Workspace& ws) { return dsir_with_ini(ws, good_ini(ws.in) + "num_bukets = 100\n"); },
       2,
       {"unknown config key 'dsir.num_bukets' in {in}/my.ini", "did you mean 'dsir.num_buckets'"}},
      {"config",
       "duplicated_key_in_ini",
       [](Workspace& ws) { return dsir_with_ini(ws, good_ini(ws.in) + "seed = 1\nseed = 2\n"); },
       2,
       {"config key 'dsir.seed' is given more than once in {in}/my.ini"}},
      {"config",
       "empty_index_cache",
       [](Workspace& ws) { return dsir_with_ini(ws, good_ini(ws.in) + "index_cache =\n"); },
       2,
       {"config key 'dsir.index_cache' is empty; use a directory, auto or off"}},
      {"config",
       "misspelt_section",
       [](Workspace& ws) { return dsir_with_ini(ws, "[dsri]\nnum_select = 5\n"); },
       2,
       {"unknown config key 'dsri.num_select' in {in}/my.ini"}},
      {"config",
       "line_without_equals",
       [](Workspace& ws) { return dsir_with_ini(ws, good_ini(ws.in) + "save_weights\n"); },
       2,
       {"cannot parse config in {in}/my.ini"}},
      {"config",
       "binary_ini",
       [](Workspace& ws) { return dsir_with_ini(ws, std::string("\x89HDF\r\n\x1a\n\0\0", 10)); },
       2,
       {"config file {in}/my.ini is not a text INI file (byte 6 is 0x1a)"}},
      {"config",
       "invalid_utf8_in_ini_value",
       [](Workspace& ws) {
         return dsir_with_ini(ws, "[dsir]\ntarget = " + ws.in + "/t\xff\xfe.jsonl\nraw = " + ws.in +
                                      "/raw.jsonl\nnum_select = 5\n");
       },
       65,
       {"dsir.target: no such file: {in}/t\xff\xfe.jsonl"}},
      {"config",
       "missing_ini",
       [](Workspace& ws) {
         dsir_good(ws);
         return std::vector<std::string>{"dsir", "--config", ws.in + "/none.ini"};
       },
       2,
       {"cannot read config file {in}/none.ini: No such file or directory"}},
      {"config",
       "empty_ini",
       [](Workspace& ws) { return dsir_with_ini(ws, ""); },
       2,
       {"missing required config key 'dsir.raw'"}},
      {"config",
       "unknown_option",
       [](Workspace& ws) { return with(dsir_good(ws), "--dsir.num_selct=5"); },
       2,
       {"unknown option '--dsir.num_selct=5'", "did you mean '--dsir.num_select'"}},
      {"config",
       "duplicated_option",
       [](Workspace& ws) {
         auto args = dsir_good(ws);
         args.push_back("--dsir.seed=1");
         args.push_back("--dsir.seed=2");
         return args;
       },
       2,
       {"dsir.seed"}},
      {"config",
       "not_an_integer",
       [](Workspace& ws) { return with(dsir_good(ws), "--dsir.num_buckets=1e3"); },
       2,
       {"config key 'dsir.num_buckets': '1e3' is not an integer"}},
      {"config",
       "integer_overflow",
       [](Workspace& ws) { return with(dsir_good(ws), "--dsir.num_select=99999999999999999999"); },
       2,
       {"dsir.num_select", "99999999999999999999"}},
      {"config",
       "negative_count",
       [](Workspace& ws) { return with(dsir_good(ws), "--dsir.num_buckets=-5"); },
       2,
       {"config key 'dsir.num_buckets': -5 is out of range"}},
      {"config",
       "nan_value",
       [](Workspace& ws) { return with(poisson_good(ws), "--poisson.tol=nan"); },
       2,
       {"config key 'poisson.tol': 'nan' is not a number"}},
      {"config",
       "inf_value",
       [](Workspace& ws) { return with(hessian_good(ws), "--hessian.lr=inf"); },
       2,
       {"config key 'hessian.lr': 'inf' is not a number"}},
      {"config",
       "out_of_range_fraction",
       [](Workspace& ws) { return with(cca_good(ws), "--cca.val_fraction=1.5"); },
       2,
       {"cca.val_fraction", "1.5 is not in [0, 1)"}},
      {"config",
       "unknown_choice",
       [](Workspace& ws) { return with(hessian_good(ws), "--hessian.operator=fisher"); },
       2,
       {"config key 'hessian.operator': 'fisher' is not one of"}},
      {"config",
       "dcdm_train_problem_file",
       // dcdm-train reads no input file; its problem comes from the config alone.
       [](Workspace&) {
         return std::vector<std::string>{"dcdm-train", "--dcdm-train.grid=8", "--dcdm-train.problem=file"};
       },
       2,
       {"config key 'dcdm-train.problem': 'file' is not one of"}},
      {"config",
       "components_above_features",
       [](Workspace& ws) { return with(cca_good(ws), "--cca.components=5"); },
       65,
       {"cca: components = 5 is more than min(p, q) = min(12, 3) ({in}/geno.bed and {in}/y.h5:/Y)"}},
  };
}

}  // namespace skein::bad_inputs
