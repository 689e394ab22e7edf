"""Byte-level BPE, as GPT-2 uses it, readable and writable as Hugging Face GPT-2 files.

Encoding a text takes four steps:

1. Cut out special tokens (`<|endoftext|>`) that are allowed (see `encode`).
2. Pre-tokenize each remaining piece with a regex into "words" (GPT-2's
   pattern keeps a leading space with the word: "Hello world" -> "Hello", " world").
   Merges never cross a word boundary.
3. Write each word as its UTF-8 bytes, one symbol per byte: 256 base tokens,
   so any text can be encoded and no id is ever unknown.
4. Merge adjacent symbols by rank: repeatedly merge the pair that was learned
   earliest in training, until no learned pair is left.

In files, each byte is written as a printable character (GPT-2's
`bytes_to_unicode`: printable bytes stand for themselves, the others are
shifted to code points 256 and up; a space becomes "Ġ"), so vocab.json and
merges.txt hold strings like "Ġthe" and the line "Ġt he".
"""

import functools
import json
import os

import regex
from tqdm import tqdm

from minillm.checkpoint import read_json, write_json
from minillm.tokenizers.lookup import look_up
from minillm.tokenizers.merges import learn_merges, merge_word
from minillm.tokenizers.special import special_pattern, split_special
from minillm.tokenizers.word_cache import WordCache

# GPT-2's split pattern: contractions, letters, digits, other symbols (each
# optionally after one space) and runs of whitespace. The whitespace before a
# word stays with the word: "\s+(?!\S)" leaves the last space for it.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# GPT-4's (tiktoken cl100k_base): case-insensitive contractions, numbers in groups of
# at most three digits, newlines kept apart from other whitespace.
CL100K_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
                  r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
PATTERNS = {"gpt2": GPT2_PATTERN, "cl100k": CL100K_PATTERN}
ENDOFTEXT = "<|endoftext|>"
NOT_A_MERGE = (float("inf"), None)  # the rank of a pair that was never learned


def bytes_to_unicode():
    """{byte: printable character}, GPT-2's table, in GPT-2's order (its first 256 ids)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def utf8(text):
    """text as UTF-8 bytes; a lone surrogate (not encodable) is a ValueError naming its offset."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"text has a lone surrogate {text[err.start]!r} at offset {err.start}: "
                         "it is not a Unicode character and cannot be written as UTF-8") from None


class BPETokenizer:
    """Byte-level BPE: `vocab` {token string: id} and `merges` [(left, right)] in rank order.

    Token strings use GPT-2's byte-to-character table; special tokens are
    written as themselves and must be in the vocabulary.
    """

    covers = "any text (every byte has a token)"

    def __init__(self, vocab, merges, special_tokens=(ENDOFTEXT,), pattern="gpt2"):
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self.pattern_name = pattern
        self.pattern = regex.compile(PATTERNS[pattern])
        self.special_tokens = {t: self._id(t, "special token") for t in special_tokens}
        byte_char = bytes_to_unicode()
        self.byte_id = [self._id(byte_char[b], f"byte {b}") for b in range(256)]  # byte -> base token id
        char_byte = {c: b for b, c in byte_char.items()}
        self.id_bytes = {}  # id -> the bytes it stands for (specials: their UTF-8)
        for token, i in self.vocab.items():
            if token in self.special_tokens:
                self.id_bytes[i] = token.encode("utf-8")
            elif all(c in char_byte for c in token):
                self.id_bytes[i] = bytes(char_byte[c] for c in token)
            else:
                raise ValueError(f"vocabulary token {token!r} (id {i}) uses characters outside GPT-2's byte table "
                                 "and is not a special token")
        self.ranks = {}  # (left id, right id) -> (rank, merged id)
        for rank, (a, b) in enumerate(self.merges):
            what = f"merge {rank} ({a} {b})"
            self.ranks[(self._id(a, what), self._id(b, what))] = (rank, self._id(a + b, what))
        self.encode_word = WordCache(lambda word: self.merge_by_rank([self.byte_id[b] for b in utf8(word)]))

    def _id(self, token, what):
        if token not in self.vocab:
            raise ValueError(f"{what}: {token!r} is not in the vocabulary")
        return self.vocab[token]

    @property
    def vocab_size(self):
        return max(self.vocab.values()) + 1

    # ---------------------------------------------------------------- training

    @classmethod
    def train(cls, texts, vocab_size, pattern="gpt2", special_tokens=(ENDOFTEXT,), progress=False,
              learner=learn_merges):
        """Learn merges from `texts` (a string or an iterable of strings) until the vocabulary
        has `vocab_size` tokens: 256 bytes + merged tokens + `special_tokens` (at the end).

        Merges follow `merges.learn_merges`: the most frequent pair first, ties to
        the pair whose (left id, right id) is smallest, where the 256 byte ids are in
        GPT-2's order and a merged token's id is its position in the vocabulary.
        Special tokens found in the texts are cut out and not learned from. `learner` is
        merges.learn_merges, or merges.learn_merges_naive for the benchmark's baseline.
        """
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is below 256 bytes + {len(special_tokens)} special tokens")
        word_counts = pretokenize_counts(texts, regex.compile(PATTERNS[pattern]), special_pattern(special_tokens),
                                         progress)
        byte_char = bytes_to_unicode()
        tokens = list(byte_char.values())  # id -> string; the 256 bytes in GPT-2's order
        byte_id = {b: i for i, b in enumerate(byte_char)}
        words = {}
        for word, count in word_counts.items():
            ids = tuple(byte_id[b] for b in utf8(word))
            words[ids] = words.get(ids, 0) + count
        ids_of = {t: i for i, t in enumerate(tokens)}
        merges = []

        def merged_id(a, b):
            # Two pairs can spell the same string ("ab"+"c", "a"+"bc"): they share one id, as in Hugging Face.
            merges.append((tokens[a], tokens[b]))
            s = tokens[a] + tokens[b]
            if s not in ids_of:
                ids_of[s] = len(tokens)
                tokens.append(s)
            return ids_of[s]

        bar = tqdm(total=n_merges, desc="bpe merges", disable=not progress)
        for _ in learner(words, merged_id):
            bar.update(1)
            if len(tokens) >= 256 + n_merges:
                break
        bar.close()
        for t in special_tokens:
            ids_of[t] = len(tokens)
            tokens.append(t)
        return cls(ids_of, merges, special_tokens, pattern)

    # ---------------------------------------------------------------- encoding

    def encode(self, text, allowed_special="all", disallowed_special=()):
        """Token ids of `text`.

        allowed_special: special tokens (or "all") that become their own id where they appear.
        disallowed_special: special tokens (or "all" = every one not allowed) whose presence is a
        ValueError. Special tokens in neither set are encoded as ordinary text.
        The default, every special token allowed, gives exactly GPT2TokenizerFast's ids;
        tiktoken's safer default is allowed_special=(), disallowed_special="all".
        Errors: ValueError for a disallowed special token or a lone surrogate.
        """
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special has tokens that are not special tokens: {sorted(unknown)}")
        disallowed = set(self.special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special)
        if disallowed:
            m = cached_special_pattern(frozenset(disallowed)).search(text)
            if m:
                raise ValueError(f"text has the special token {m.group()!r} at offset {m.start()}, which is "
                                 "disallowed: pass it in allowed_special to encode it as a special token, or "
                                 "leave it out of disallowed_special to encode it as text")
        ids = []
        for start, end, special in split_special(text, cached_special_pattern(frozenset(allowed))):
            if special:
                ids.append(self.special_tokens[text[start:end]])
                continue
            utf8(text[start:end])  # a clear error for lone surrogates before any work
            for word in self.pattern.findall(text, start, end):
                ids.extend(self.encode_word(word))
        return ids

    def merge_by_rank(self, ids):
        """Apply learned merges, the lowest rank present first, until none applies."""
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, NOT_A_MERGE))
            if pair not in self.ranks:
                break
            ids = merge_word(ids, pair, self.ranks[pair][1])
        return ids

    def decode(self, ids):
        """The text of `ids`. Bytes that are not valid UTF-8 (a character cut between tokens)
        become U+FFFD; an id that is not in the vocabulary is a ValueError."""
        return b"".join(look_up(self.id_bytes, ids)).decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- files

    def save(self, directory):
        """Write Hugging Face GPT-2 files: vocab.json, merges.txt, tokenizer_config.json."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(f"{a} {b}\n" for a, b in self.merges)
        specials = list(self.special_tokens)
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "pattern": self.pattern_name,
                  "additional_special_tokens": specials}
        if ENDOFTEXT in self.special_tokens:
            config.update(bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, unk_token=ENDOFTEXT)
        write_json(os.path.join(directory, "tokenizer_config.json"), config)

    @classmethod
    def load(cls, directory):
        """Read vocab.json + merges.txt (+ tokenizer_config.json, special_tokens_map.json if present),
        or, where only it exists, the `tokenizers` library's tokenizer.json (what transformers 5 saves).

        Special tokens are those the config names (bos/eos/unk/pad/..., additional_special_tokens,
        added_tokens_decoder); GPT2Tokenizer's default `<|endoftext|>` is special when in the vocabulary.
        """
        vocab_path = os.path.join(directory, "vocab.json")
        json_path = os.path.join(directory, "tokenizer.json")
        if os.path.exists(vocab_path) or not os.path.exists(json_path):
            vocab = read_json(vocab_path)
            merges = read_merges(os.path.join(directory, "merges.txt"))
            specials = []
        else:
            vocab, merges, specials = read_tokenizer_json(json_path)
        if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
            raise ValueError(f"{vocab_path}: expected a JSON object {{token: integer id}}")
        config = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                config.update(read_json(path))
        specials = [t for t in dict.fromkeys(specials + config_special_tokens(config)) if t in vocab]
        if ENDOFTEXT in vocab and ENDOFTEXT not in specials:
            specials.append(ENDOFTEXT)
        return cls(vocab, merges, specials, config.get("pattern", "gpt2"))


@functools.lru_cache(maxsize=64)  # encode is called once per document: compile each set of specials once
def cached_special_pattern(tokens):
    return special_pattern(tokens)


def pretokenize_counts(texts, pattern, specials, progress=False):
    """{word: count} over the texts, split by `pattern`, with special tokens cut out."""
    if isinstance(texts, str):
        texts = [texts]
    counts = {}
    for text in tqdm(texts, desc="pre-tokenizing", disable=not progress):
        for start, end, special in split_special(text, specials):
            if special:
                continue
            for word in pattern.findall(text, start, end):
                counts[word] = counts.get(word, 0) + 1
    return counts


def read_merges(path):
    """[(left, right)] from a merges.txt: an optional "#version" line, then "left right" per line."""
    merges = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{path}, line {number}: expected two tokens separated by one space, got {line!r}")
            merges.append(tuple(parts))
    return merges


def read_tokenizer_json(path):
    """(vocab, merges, special tokens) of a byte-level BPE tokenizer.json."""
    data = read_json(path)
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"{path}: model.type is {model.get('type')!r}, expected 'BPE'")
    # Merges are "left right" strings in older files and [left, right] pairs in newer ones.
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    specials = [t["content"] for t in data.get("added_tokens", []) if t.get("special")]
    return model.get("vocab"), merges, specials


def config_special_tokens(config):
    """Special token strings named in a Hugging Face tokenizer_config / special_tokens_map."""
    def content(t):
        return t["content"] if isinstance(t, dict) else t

    found = []
    for key in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"):
        if config.get(key):
            found.append(content(config[key]))
    for key in ("additional_special_tokens", "extra_special_tokens"):
        if isinstance(config.get(key), list):
            found += [content(t) for t in config[key]]
    found += [content(t) for t in (config.get("added_tokens_decoder") or {}).values()]
    return list(dict.fromkeys(found))
