#!/usr/bin/env python3
"""Generates jobs/dsir/unicode_tables.inc: the Unicode properties the DSIR tokenizer needs, taken from the
running Python itself so that the C++ tokenizer reproduces that Python's `str.lower()` and `re` exactly.

Run with the Python whose semantics the reference is pinned to (3.11, Unicode 14.0):

    python3.11 jobs/dsir/gen_unicode_tables.py > jobs/dsir/unicode_tables.inc

Per code point we record:
  * its class for the regex `\\w+|[^\\w\\s]+`: word (`re` \\w: isalnum() or '_'), space (`re` \\s: isspace()),
    or other (punctuation, symbols, marks, controls, unassigned ...);
  * its full lowercase mapping (`chr(c).lower()`; U+0130 maps to two code points) and the class of the result;
  * the two properties of CPython's Final_Sigma rule (unicodeobject.c, handle_capital_sigma): Case_Ignorable,
    and Cased. Both are measured from `str.lower()` itself rather than recomputed from the Unicode data files,
    and cross-checked against their definitions (Cased = Lowercase | Uppercase | Lt; Case_Ignorable = Mn | Me |
    Cf | Lm | Sk | Word_Break in {MidLetter, MidNumLet, Single_Quote}).

The tables are a two-stage lookup (as in CPython's own unicodetype_db.h): stage1[cp >> SHIFT] selects a block,
stage2[block * (1 << SHIFT) + (cp & mask)] a record.
"""
import re
import sys
import unicodedata

MAX_CP = 0x110000
SPACE, WORD, OTHER = 0, 1, 2

# Record flag bits; keep in sync with tokenizer.cpp (which includes the generated constants).
F_CLS_SHIFT = 0  # 2 bits: class of the code point itself
F_LCLS_SHIFT = 2  # 2 bits: class of its lowercase (single code point mappings)
F_CASED = 1 << 4  # Cased and not Case_Ignorable: what ends CPython's backward/forward scan as "cased"
F_IGNORABLE = 1 << 5  # Case_Ignorable: skipped by the Final_Sigma scans
F_MULTI = 1 << 6  # lowercase is several code points: delta is an index into kLowerMulti

WORD_RE = re.compile(r"\w")
SPACE_RE = re.compile(r"\s")


def is_surrogate(c):
    return 0xD800 <= c < 0xE000


def cls_of(ch):
    w = WORD_RE.fullmatch(ch) is not None
    s = SPACE_RE.fullmatch(ch) is not None
    assert w == (ch.isalnum() or ch == "_"), hex(ord(ch))
    assert s == ch.isspace(), hex(ord(ch))
    assert not (w and s)
    return WORD if w else SPACE if s else OTHER


def main():
    assert sys.version_info[:2] == (3, 11), "generate with Python 3.11 (Unicode 14.0) to match the reference"
    cats = {}
    records = {}
    record_list = []
    multi = []
    per_cp = [0] * MAX_CP
    n_cased = n_ign = 0
    max_lower_ratio = 1.0
    for c in range(MAX_CP):
        if is_surrogate(c):
            # Never decoded from valid UTF-8; give them the "other" class like unassigned code points.
            key = (OTHER | (OTHER << F_LCLS_SHIFT), 0)
        else:
            ch = chr(c)
            cat = unicodedata.category(ch)
            cls = cls_of(ch)
            low = ch.lower() if c != 0x3A3 else "\u03c3"  # sigma is resolved by context at run time
            # Empirical Final_Sigma properties. CPython looks at the first non-Case_Ignorable code point on each
            # side, so only "cased and not ignorable" matters, and that is what ch + SIGMA measures.
            cased = (ch + "\u03a3").lower()[-1] == "\u03c2"
            ignorable = (not cased) and ("A" + ch + "\u03a3").lower()[-1] == "\u03c2"
            # Cross-check against the Unicode definitions.
            def_cased = ch.islower() or ch.isupper() or cat == "Lt"
            def_ign_cat = cat in ("Mn", "Me", "Cf", "Lm", "Sk")
            assert not (def_ign_cat and cased), hex(c)
            if cased:
                assert def_cased, hex(c)
            if def_ign_cat:
                assert ignorable, hex(c)
            if not ignorable and not cased:
                assert not def_cased or def_ign_cat, hex(c)
            n_cased += cased
            n_ign += ignorable
            flags = cls << F_CLS_SHIFT
            if cased:
                flags |= F_CASED
            if ignorable:
                # Includes code points that are both Cased and Case_Ignorable (U+02B0): the scans skip them.
                flags |= F_IGNORABLE
            if len(low) == 1:
                delta = ord(low) - c
                flags |= cls_of(low) << F_LCLS_SHIFT
            else:
                flags |= F_MULTI | (OTHER << F_LCLS_SHIFT)
                delta = len(multi)
                multi.append([ord(x) for x in low])
            max_lower_ratio = max(max_lower_ratio, len(low.encode()) / len(ch.encode()))
            key = (flags, delta)
        if key not in records:
            records[key] = len(record_list)
            record_list.append(key)
        per_cp[c] = records[key]

    assert len(record_list) < 256, len(record_list)
    assert max_lower_ratio <= 1.5, max_lower_ratio
    assert all(len(m) <= 3 for m in multi)

    best = None
    for shift in range(4, 11):
        bs = 1 << shift
        blocks = {}
        stage1 = []
        stage2 = []
        for b in range(MAX_CP >> shift):
            blk = tuple(per_cp[b * bs:(b + 1) * bs])
            if blk not in blocks:
                blocks[blk] = len(blocks)
                stage2.extend(blk)
            stage1.append(blocks[blk])
        s1_bytes = len(stage1) * (1 if len(blocks) <= 256 else 2)
        size = s1_bytes + len(stage2)
        if best is None or size < best[0]:
            best = (size, shift, stage1, stage2, len(blocks))
    size, shift, stage1, stage2, nblocks = best
    s1_type = "std::uint8_t" if nblocks <= 256 else "std::uint16_t"

    out = []
    w = out.append
    w("// Generated by jobs/dsir/gen_unicode_tables.py from Python %d.%d.%d (Unicode %s). Do not edit."
      % (sys.version_info[:3] + (unicodedata.unidata_version,)))
    w("// %d records, %d blocks of %d, %d bytes of stage tables;" % (len(record_list), nblocks, 1 << shift, size))
    w("// %d code points Cased (and not Case_Ignorable), %d Case_Ignorable." % (n_cased, n_ign))
    w("// clang-format off")
    w("namespace skein::dsir::detail {")
    w('constexpr const char* kUnicodeVersion = "%s";' % unicodedata.unidata_version)
    w("constexpr int kStageShift = %d;" % shift)
    w("constexpr std::uint8_t kFlagCased = %d;" % F_CASED)
    w("constexpr std::uint8_t kFlagIgnorable = %d;" % F_IGNORABLE)
    w("constexpr std::uint8_t kFlagMulti = %d;" % F_MULTI)
    w("constexpr int kLowerClassShift = %d;" % F_LCLS_SHIFT)
    w("struct CpRecord {")
    w("  std::int32_t delta;  // lowercase = cp + delta, or with kFlagMulti an index into kLowerMulti")
    w("  std::uint8_t flags;  // bits 0-1: class (0 space, 1 word, 2 other); 2-3: class of the lowercase; flags")
    w("};")
    w("constexpr CpRecord kRecords[%d] = {" % len(record_list))
    line = "  "
    for flags, delta in record_list:
        item = "{%d, %d}, " % (delta, flags)
        if len(line) + len(item) > 108:
            w(line.rstrip())
            line = "  "
        line += item
    w(line.rstrip())
    w("};")
    w("// Full lowercase mappings of more than one code point (count, code points).")
    w("constexpr std::uint32_t kLowerMulti[%d][4] = {" % len(multi))
    for m in multi:
        w("  {%d, %s}," % (len(m), ", ".join(str(x) for x in m + [0] * (3 - len(m)))))
    w("};")

    def dump(name, typ, values):
        w("constexpr %s %s[%d] = {" % (typ, name, len(values)))
        line = " "
        for v in values:
            item = " %d," % v
            if len(line) + len(item) > 108:
                w(line)
                line = " "
            line += item
        w(line)
        w("};")

    dump("kStage1", s1_type, stage1)
    dump("kStage2", "std::uint8_t", stage2)
    w("}  // namespace skein::dsir::detail")
    w("// clang-format on")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
