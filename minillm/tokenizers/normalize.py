"""BERT's basic text normalisation (its BasicTokenizer, in the order of BertTokenizerFast's normalizer).

Drop NUL, U+FFFD and control characters; turn whitespace into spaces; put
spaces around every CJK ideograph; if lower-casing: NFD, drop non-spacing
marks (accents), lower-case; split on whitespace, then split every
punctuation character into its own word. Every normalized character
remembers the index of the original character it came from, so each word
knows its span in the original text.
"""

import functools
import unicodedata


def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_control(c):
    # Tab, newline and carriage return are Cc but BERT counts them as whitespace.
    return c not in "\t\n\r" and unicodedata.category(c).startswith("C")


def is_punctuation(c):
    # BERT counts every non-letter non-digit ASCII character as punctuation ("$", "+", "^"...).
    cp = ord(c)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 \
        or unicodedata.category(c).startswith("P")


def is_cjk(c):
    """CJK Unified Ideographs and their extensions (not Hangul, Hiragana or Katakana).

    Extension E starts at U+2B820, but BertTokenizerFast's table starts it at U+2B920;
    we follow BertTokenizerFast so that ids agree (U+2B820..U+2B91F stay inside words)."""
    cp = ord(c)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


@functools.lru_cache(maxsize=None)  # texts reuse few distinct characters: compute each once
def normalize_char(c, lowercase):
    """What one original character becomes: "" (dropped), " ", or one or more characters."""
    if ord(c) in (0, 0xFFFD) or is_control(c):
        return ""
    if is_whitespace(c):
        return " "
    if lowercase:
        c = "".join(x for x in unicodedata.normalize("NFD", c) if unicodedata.category(x) != "Mn").lower()
    return c


@functools.lru_cache(maxsize=None)
def stands_alone(c):
    """Punctuation and CJK ideographs are words of their own."""
    return is_punctuation(c) or is_cjk(c)


def basic_words(text, start, end, lowercase):
    """The words of text[start:end] after basic tokenization: [(word, [original index per char])]."""
    words = []
    word, where = [], []

    def flush():
        if word:
            words.append(("".join(word), list(where)))
            word.clear()
            where.clear()

    for i in range(start, end):
        for c in normalize_char(text[i], lowercase):
            if c == " " or c.isspace():
                flush()
            elif stands_alone(c):
                flush()
                words.append((c, [i]))
            else:
                word.append(c)
                where.append(i)
    flush()
    return words
