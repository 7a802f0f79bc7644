#!/usr/bin/env python3
"""Writes tests/data/tokenizer_cases.jsonl: inputs and the tokens the DSIR reference produces for them.

The reference (data-selection 1.0.3, hashed_ngram_dsir.py) tokenizes `line.lower()` with NLTK's
WordPunctTokenizer, i.e. `re.findall(r"\\w+|[^\\w\\s]+", text)`. Each output line is one JSON object:

    {"lower": true, "text": "...", "tokens": ["...", ...]}

`lower: false` cases tokenize the text as is. Run with Python 3.11 (Unicode 14.0), the version the C++ tables are
generated from:

    python3.11 tests/golden/make_tokenizer_goldens.py > tests/data/tokenizer_cases.jsonl
"""
import json
import random
import re
import sys

PATTERN = re.compile(r"\w+|[^\w\s]+")

HAND = [
    "Alice went to the store",
    "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election.",
    "()()($#%@?)@(#(*",
    "don't  stop--believing!!! e.g. U.S.A. 3.14 1,000,000 snake_case __init__ a_b-c",
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x00\x01\x7f~",
    "İstanbul İİ İ",
    "ΣΑΣ",
    "ὈΔΥΣΣΕΎΣ",
    "Σ",
    " Σ ",
    "ΑΣ",
    "ΑΣ.",
    "ΑΣΑ",
    "Α'Σ",
    "Α'Σ'",
    "Α'Σ'Α",
    "Α.Σ:Α",
    "Α\u0301Σ\u0301",
    "Α\u0301Σ\u0301Β",
    "1Σ",
    "ǅΣ",
    "\u02b0Σ",
    "Α\u02b0Σ",
    "ΑΣ\u02b0",
    "ΑΣ\u02b0Β",
    "ΑΣΣΣ ΣΣΣ Σ.Σ",
    "ΑΣ\u200bΒ",
    "ΑΣ\u00adΒ ΑΣ\u00ad",
    "ΑΣ\U0001d400",
    "\U00010400Σ \U00010400Σ\U00010400",
    "हिन्दी",
    "नमस्ते दुनिया",
    "a\u200bb",
    "a\u3000b\u0085c\u00a0d\u2028e\u2029f\u202fg\u205fh\u2000i\u200aj\u180ek",
    "日本語テキスト 中文，标点。",
    "😀👍🏽👨‍👩‍👧 hi😀there",
    "² ½ Ⅻ ⅻ ① x² 10½ ⅫⅫ",
    "_ __ _a_ a_b",
    "\U00010400\U00010428 \U0001d400\U0001d41a \U0001e900 \U00020000\U0002a6df",
    "K Å Ω ẞ Ⱥ Ⱦ ǅ ǈ ǋ ǲ ﬀ ŉ",
    "ÀÉÎÕÜ àéîõü ÇÑ",
    "Ǆemal ǅemal ǆemal",
    "Привет, Мир! ПРИВЕТ",
    "العربية مَرْحَبًا",
    "ภาษาไทย",
    "한국어 텍스트",
    "\ufeffBOM at start",
    "a\u0301b\u0300c",
    "e\u0301\u0301\u0301",
    "‘quoted’ “double” — dash – en … ellipsis",
    "a·b c·d",
    "٣٤٥ ۴۵ ߀ ১২৩",
    "\U0001f1fa\U0001f1f8 flags",
    "",
    "   ",
    "x",
]

# Pools for the random strings: (weight, chooser).
SPECIALS = (
    "İΣσςΑΒΩΆάΈ\u0301\u0300\u0307\u200b\u200c\u200d\u3000\u0085\u00a0\u2028\u2029\u202f\u205f\u1680"
    "²½Ⅻⅻ_'.:·’‘\u02b0ǅẞKΩⰀⱥ\U00010400\U0001d400\U0001e900😀\ufeff\u00ad"
    "हिन्दीक्षत्रज्ञ日本語中文한국어ـًٌ٣ΐΰ\u0345ꙮ"
)


def rand_cp(rng):
    while True:
        r = rng.random()
        if r < 0.5:
            c = rng.randrange(0x80, 0x800)
        elif r < 0.85:
            c = rng.randrange(0x800, 0x10000)
        else:
            c = rng.randrange(0x10000, 0x110000)
        if not 0xD800 <= c < 0xE000:
            return chr(c)


def rand_char(rng):
    r = rng.random()
    if r < 0.35:
        return chr(rng.randrange(0, 0x80))
    if r < 0.5:
        return rng.choice("abcdefghijklmnopqrstuvwxyzABCXYZ0189 ,.;-'")
    if r < 0.75:
        return rng.choice(SPECIALS)
    return rand_cp(rng)


def sigma_string(rng):
    alphabet = ["Σ", "Σ", "Σ", "Α", "α", "a", "1", " ", "'", ".", ":", "\u0301", "\u02b0", "ǅ", "İ", "-",
                "\u00ad", "\U00010400", "\u200b", "’"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9)))


def case(text, lower):
    src = text.lower() if lower else text
    return {"lower": lower, "text": text, "tokens": PATTERN.findall(src)}


def main():
    assert sys.version_info[:2] == (3, 11), "use Python 3.11 (Unicode 14.0), as the tables are"
    rng = random.Random(20240611)
    cases = []
    for s in HAND:
        cases.append(case(s, True))
        cases.append(case(s, False))
    for _ in range(260):
        s = "".join(rand_char(rng) for _ in range(rng.randrange(1, 40)))
        cases.append(case(s, rng.random() < 0.7))
    for _ in range(200):
        cases.append(case(sigma_string(rng), True))
    # Every ASCII character after each kind of neighbour, in long strings so that vectorized code paths see them.
    ascii_all = "".join(chr(c) for c in range(128))
    for filler in ("", "word ", "Σ", "é", "....", "\u3000"):
        s = filler.join(ascii_all[i:i + 7] for i in range(0, 128, 7)) * 2
        cases.append(case(s, True))
        cases.append(case(s, False))
    # A few real documents.
    try:
        with open("/work/shared/data/brown/brown.jsonl", encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i in (0, 1000, 5000):
                    cases.append(case(json.loads(line)["text"], True))
    except OSError:
        pass
    for c in cases:
        sys.stdout.write(json.dumps(c, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
