#!/usr/bin/python3
"""Writes the fuzz targets' seed corpus (fuzz/corpus/<target>/): a few small, mostly valid inputs per
target, each in the input format its fuzz_<target>.cpp documents, so libFuzzer starts from files that reach
deep into the readers. Usage: fuzz/corpus/make_corpus.py [FUZZ_HDF5_BINARY]; the hdf5_raw seeds (the seed
HDF5 files' bytes) need a fuzz_hdf5 or fuzz_replay_hdf5 binary, which writes them
(SKEIN_FUZZ_WRITE_HDF5_SEEDS)."""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- jsonl: flags byte (mode 0 plain / 1 compress / 2 raw .zst, 4 lowercase, 8 sha256, ngrams, 64 few
# buckets, 128 skip bad lines), then the file.
good = (
    '{"id": 1, "text": "Alice went to the store. She bought apples!"}\n'
    '{"id": 2, "genre": "news", "text": "The Fulton County Grand Jury said Friday..."}\n'
)
unicode = (
    '{"text": "\u0130stanbul \u03a3\u0391\u03a3 na\u00efve caf\u00e9 \\u00e9 \\ud83d\\ude00 \\ud800 x_y 3.14"}\r\n'
    '{"text": "tabs\\tand\\nnewlines", "text": "last key wins"}\n'
)
bad = '\n   \n{"text": 5}\n{"other": "x"}\n{not json\n[1, 2]\n{"text": "big", "n": 123456789012345678901234567890}\n'
write("jsonl", "plain", bytes([0x04]) + good.encode())
write("jsonl", "unicode_sha256_trigram", bytes([0x80 | 0x04 | 0x08 | 0x20]) + unicode.encode())
write("jsonl", "bad_lines_skip", bytes([0x80 | 0x40]) + (good + bad).encode())
write("jsonl", "invalid_utf8", bytes([0x84]) + b'{"text": "ok \xff\xfe \xc0\x80 \xed\xa0\x80 end"}\n\xf5\x80 {"text":"a"}')
write("jsonl", "no_final_newline", bytes([0x01 | 0x04]) + good.encode() + b'{"text": "last"}')
zst = subprocess.run(["zstd", "-q", "-c"], input=good.encode(), stdout=subprocess.PIPE, check=True).stdout
write("jsonl", "raw_zst", bytes([0x02 | 0x04]) + zst)
write("jsonl", "truncated_zst", bytes([0x02]) + zst[: len(zst) // 2])

# --- config: the command line after `skein run` (one argument per line, job first), NUL, the INI text.
def config(args, ini):
    return "\n".join(args).encode() + b"\0" + ini.encode()

write("config", "dsir", config(["dsir", "--dsir.num_buckets=100"],
                               "[dsir]\ntarget = t.jsonl\nraw = r*.jsonl, s.jsonl.zst\nnum_select = 10\nngrams = 3\n"
                               "piece_size = 64k\nraw_fit = 0.5\n# comment\n; another\n"))
write("config", "poisson", config(["poisson", "--poisson.solver=dcdm", "--poisson.model=m.h5"],
                                  "[poisson]\ngrid = 16x16x8\nproblem = smoke\nobstacles = 4,4,4,2;8,8,4,1\ntol = 1e-6\n"))
write("config", "hessian", config(["hessian", "--hessian.top_k", "3"],
                                  "[hessian]\nmodel = m.h5\ndata = d.h5\noperator = ggn\nanalyze_at = 0,1,2\n"
                                  "train_epochs = 2\n"))
write("config", "cca", config(["cca", "--cca.method=ridge"],
                              "[cca]\nx = geno\ny = pheno.h5:/Y\nalpha = 0.3\ncomponents = 2\nstorage = stream\n"))
write("config", "cca_synth", config(["cca-synth"], "[cca-synth]\nsamples = 10\nsnps = 20\ncorrelations = 0.9,0.5,0.1\n"))
write("config", "dcdm_train", config(["dcdm-train", "--dcdm-train.grid=8"], "[dcdm-train]\nproblem = smoke\n"))
write("config", "mistakes", config(["dsir", "--dsir.nmu_buckets=3", "--resume", "--fresh", "extra.ini"],
                                   "[dsir]\ntarget = a\ntarget = b\n[other]\nkey = 1\nno equals sign\n"))

# --- plink: flags (1: standardize=scale), .fam length, .bim length (u16 LE), then .fam, .bim, .bed.
def plink(flags, fam, bim, bed):
    return bytes([flags]) + struct.pack("<HH", len(fam), len(bim)) + fam + bim + bed

fam = b"F1 I1 0 0 1 -9\nF1 I2 0 0 2 -9\nF2 I3 0 0 1 1.5\nF2 I4 0 0 0 -9\nF3 I5 0 0 1 -9\n"
bim = b"1 rs1 0 100 A G\n1 rs2 0.5 200 C T\n2 rs3 0 300 G A\n"
# 5 samples: 2 bytes per SNP; codes 00 hom A1, 10 het, 11 hom A2, 01 missing (first sample in low bits).
bed = bytes([0x6C, 0x1B, 0x01, 0b11100100, 0b10, 0b00101011, 0b11, 0b11111110, 0b00])
write("plink", "valid", plink(1, fam, bim, bed))
write("plink", "valid_center_crlf", plink(0, fam.replace(b"\n", b"\r\n"), bim, bed))
write("plink", "monomorphic", plink(1, fam, bim, bed[:3] + bytes([0, 0]) + bed[5:]))
write("plink", "short_bed", plink(0, fam, bim, bed[:-1]))

# --- hdf5 (structured): family (0 hessian, 1 dcdm, 2 cca, 3 poisson), grid byte, then edit ops.
for family in range(4):
    write("hdf5", f"seed_{family}", bytes([family, 0]))
# hessian: /y values edited (op 5 on object 7) to NaN-ish labels; /model/W1 replaced by a 3-D float32.
write("hdf5", "hessian_edits", bytes([0, 0, 5, 7, 4, 0, 1, 3, 3, 7, 1, 2, 2]))
# dcdm: attribute channels (2) set to a string on /model (object 0).
write("hdf5", "dcdm_attr", bytes([1, 0, 2, 0, 1, 2, 7, 0, 3, 0x41, 0x42, 0x43]))
# cca: /sample_id (object 1) replaced by a 1-D int64 of 6, duplicate ids.
write("hdf5", "cca_ids", bytes([2, 0, 1, 1, 1, 2, 6, 1, 1, 1, 1, 1, 1]))
# poisson: a 1x1x1 grid, /rhs values with Inf.
write("hdf5", "poisson_grid", bytes([3, 200, 5, 1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]))

# --- hdf5_raw: family, grid byte, then the bytes of each family's seed file.
if len(sys.argv) > 1:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SKEIN_FUZZ_WRITE_HDF5_SEEDS=tmp, OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([sys.argv[1]], env=env, check=True)
        for family in range(4):
            with open(os.path.join(tmp, f"seed-{family}.h5"), "rb") as f:
                write("hdf5_raw", f"seed_{family}", bytes([family, 0]) + f.read())
