"""WordPiece, as BERT uses it, readable and writable as a Hugging Face vocab.txt.

Encoding a text:

1. Cut out special tokens written in the text (`[MASK]`, `[SEP]`...).
2. Basic tokenization (BERT's BasicTokenizer, in the order of BertTokenizerFast's normalizer):
   drop NUL, U+FFFD and control characters; turn whitespace into spaces; put spaces around
   every CJK ideograph; if lower-casing: NFD, drop non-spacing marks (accents), lower-case;
   split on whitespace, then split every punctuation character into its own word.
3. WordPiece: cut each word greedily into the longest vocabulary piece from its start,
   continuation pieces spelled "##piece". A word with no full cut, or over 100
   characters, becomes [UNK].

Every normalized character remembers the index of the original character it came
from, so each token knows its span [start, end) in the original text.

Training (`WordPieceTokenizer.train`) is BPE-style, as Hugging Face's WordPieceTrainer:
words start as their characters (the first as "c", the others as "##c") and the most
frequent adjacent pair is merged ("##a" + "##b" -> "##ab", "a" + "##b" -> "ab") until
the vocabulary is full. Google's original trainer scores pairs by likelihood instead;
encoding works the same for any vocabulary.
"""

import dataclasses
import os

from tqdm import tqdm

from minillm.checkpoint import read_json, write_json
from minillm.tokenizers.lookup import look_up
from minillm.tokenizers.merges import learn_merges
from minillm.tokenizers.normalize import basic_words
from minillm.tokenizers.special import special_pattern, split_special
from minillm.tokenizers.word_cache import WordCache

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DOUBLE_SEPARATOR = ("MPNetTokenizer", "MPNetTokenizerFast")  # pairs as RoBERTa's: <s> a </s></s> b </s>
MAX_WORD_CHARS = 100


@dataclasses.dataclass
class Encoding:
    """One encoded text or pair, as lists of equal length."""
    input_ids: list
    token_type_ids: list  # 0 for [CLS] a [SEP], 1 for b [SEP]
    attention_mask: list  # 1 for real tokens, 0 for padding
    offsets: list  # (start, end) into the original text of its segment; (0, 0) for special tokens
    special_tokens_mask: list  # 1 for [CLS], [SEP], [PAD]
    sequence_ids: list  # 0 or 1: which text a token came from; None for special tokens


def longest_first(len_a, len_b, budget):
    """(tokens kept of text a, of text b) when a pair must fit in `budget` tokens, as Hugging Face's
    tokenizers (0.13 and later) truncate "longest_first":

        everything fits                      keep all
        the shorter text fits in half        keep it whole, the longer one gets the rest
        otherwise                            floor(budget / 2) and ceil(budget / 2), the larger
                                             share to the longer text, to b on a tie

    (So a = b = 5 tokens in a budget of 7 keep 3 and 4, not the 4 and 3 of dropping one
    token at a time from the longer text, as older tokenizers did.)
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    shorter, longer = sorted((len_a, len_b))
    if shorter <= budget - shorter:
        kept = (shorter, budget - shorter)
    else:
        kept = (budget // 2, budget - budget // 2)
    return kept if len_a <= len_b else kept[::-1]


class WordPieceTokenizer:
    """WordPiece over a vocabulary list (id = position), BERT's special tokens included."""

    covers = "any text, a word it cannot build from its pieces becoming [UNK]"

    def __init__(self, vocab, lowercase=True, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                 pad_token="[PAD]", mask_token="[MASK]", tokenizer_class="BertTokenizer"):
        self.itos = list(vocab)
        self.tokenizer_class = tokenizer_class  # written back by save: MPNet's WordPiece is MPNetTokenizer
        self.pair_separators = 2 if tokenizer_class in DOUBLE_SEPARATOR else 1  # between the texts of a pair
        self.stoi = {}
        for i, t in enumerate(self.itos):
            self.stoi.setdefault(t, i)  # a repeated line keeps its first id, as Hugging Face does
        self.lowercase = lowercase
        named = {"unk_token": unk_token, "cls_token": cls_token, "sep_token": sep_token,
                 "pad_token": pad_token, "mask_token": mask_token}
        for name, token in named.items():
            if token not in self.stoi:
                raise ValueError(f"{name} {token!r} is not in the vocabulary")
        self.unk_token, self.cls_token, self.sep_token = unk_token, cls_token, sep_token
        self.pad_token, self.mask_token = pad_token, mask_token
        self.unk_id, self.cls_id, self.sep_id = self.stoi[unk_token], self.stoi[cls_token], self.stoi[sep_token]
        self.pad_id, self.mask_id = self.stoi[pad_token], self.stoi[mask_token]
        self.special_ids = {self.stoi[t] for t in named.values()}
        self.special_regex = special_pattern(named.values())
        self.word_pieces = WordCache(self.greedy_pieces)  # word -> [(i, j, id)]: its pieces word[i:j]

    @property
    def vocab_size(self):
        return len(self.itos)

    # ---------------------------------------------------------------- training

    @classmethod
    def train(cls, texts, vocab_size, lowercase=True, progress=False):
        """Learn a vocabulary of `vocab_size` tokens from `texts` (a string or iterable of strings).

        The vocabulary is SPECIAL_TOKENS, then the alphabet (every character that starts a word,
        then every "##c" continuation, each group sorted by code point), then merged pieces in
        merge order (the most frequent pair first, ties to the smallest pair of ids, see merges.py).
        If the alphabet alone does not fit, the most frequent symbols are kept and words that use
        a dropped one are left out of training (they encode to [UNK]).
        """
        if isinstance(texts, str):
            texts = [texts]
        counts = {}
        for text in tqdm(texts, desc="basic tokenization", disable=not progress):
            for start, end, special in split_special(text, special_pattern(SPECIAL_TOKENS)):
                if not special:
                    for word, _ in basic_words(text, start, end, lowercase):
                        counts[word] = counts.get(word, 0) + 1
        budget = vocab_size - len(SPECIAL_TOKENS)
        if budget < 0:
            raise ValueError(f"vocab_size {vocab_size} is below the {len(SPECIAL_TOKENS)} special tokens")
        symbol_counts = {}
        for word, n in counts.items():
            for s in [word[0]] + ["##" + c for c in word[1:]]:
                symbol_counts[s] = symbol_counts.get(s, 0) + n
        kept = sorted(symbol_counts, key=lambda s: (-symbol_counts[s], s))[:budget]
        alphabet = sorted(s for s in kept if not s.startswith("##")) + sorted(s for s in kept if s.startswith("##"))
        tokens = list(SPECIAL_TOKENS) + alphabet
        ids_of = {t: i for i, t in enumerate(tokens)}
        words = {}
        for word, n in counts.items():
            symbols = [word[0]] + ["##" + c for c in word[1:]]
            if all(s in ids_of for s in symbols):
                words[tuple(ids_of[s] for s in symbols)] = n

        def merged_id(a, b):
            s = tokens[a] + tokens[b][2:]  # b is always a "##" continuation
            if s not in ids_of:
                ids_of[s] = len(tokens)
                tokens.append(s)
            return ids_of[s]

        bar = tqdm(total=vocab_size, initial=len(tokens), desc="wordpiece merges", disable=not progress)
        if len(tokens) < vocab_size:
            for _ in learn_merges(words, merged_id):
                bar.update(len(tokens) - bar.n)
                if len(tokens) >= vocab_size:
                    break
        bar.close()
        return cls(tokens, lowercase)

    # ---------------------------------------------------------------- encoding

    def tokenize_with_offsets(self, text):
        """[(id, start, end)] for `text`, no [CLS]/[SEP] added. Special tokens written in the text
        (`[MASK]`) are kept as their id; an [UNK] spans the whole word it replaces."""
        out = []
        for start, end, special in split_special(text, self.special_regex):
            if special:
                out.append((self.stoi[text[start:end]], start, end))
                continue
            for word, where in basic_words(text, start, end, self.lowercase):
                for i, j, piece_id in self.word_pieces(word):
                    out.append((piece_id, where[i], where[j - 1] + 1))
        return out

    def greedy_pieces(self, word):
        """[(i, j, id)]: pieces word[i:j], greedy longest match first; [(0, len, [UNK])] if none fits."""
        if len(word) > MAX_WORD_CHARS:
            return [(0, len(word), self.unk_id)]
        pieces = []
        i = 0
        while i < len(word):
            prefix = "##" if i > 0 else ""
            for j in range(len(word), i, -1):
                piece_id = self.stoi.get(prefix + word[i:j])
                if piece_id is not None:
                    pieces.append((i, j, piece_id))
                    i = j
                    break
            else:
                return [(0, len(word), self.unk_id)]
        return pieces

    def encode(self, text):
        """The ids of `text`, without [CLS]/[SEP] (see `encode_plus` for model inputs)."""
        return [i for i, _, _ in self.tokenize_with_offsets(text)]

    def encode_plus(self, text, pair=None, max_length=None, truncation=False, padding=False):
        """`[CLS] text [SEP]` or `[CLS] text [SEP] pair [SEP]` as an Encoding (MPNet's: `<s> text </s></s>
        pair </s>`, see encode_tokens).

        truncation: with max_length, drop tokens from the ends of the texts as BertTokenizerFast's
        "longest_first" does (see longest_first). A ValueError if even the special tokens do not
        fit, or if a text is too long without truncation.
        padding: False, or "max_length" to pad with [PAD] up to max_length.
        """
        a = self.tokenize_with_offsets(text)
        b = None if pair is None else self.tokenize_with_offsets(pair)
        n_special = 2 if b is None else 2 + self.pair_separators
        if max_length is not None:
            total = len(a) + (len(b) if b else 0) + n_special
            if total > max_length and not truncation:
                raise ValueError(f"{total} tokens exceed max_length {max_length}; pass truncation=True")
            if max_length < n_special:
                raise ValueError(f"max_length {max_length} leaves no room for the {n_special} special tokens")
            if b is None:
                del a[max_length - n_special:]
            else:
                keep_a, keep_b = longest_first(len(a), len(b), max_length - n_special)
                del a[keep_a:], b[keep_b:]
        enc = self.encode_tokens(a, b)
        if padding == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length")
            self.pad(enc, max_length)
        elif padding:
            raise ValueError(f"padding must be False or 'max_length' here, got {padding!r}")
        return enc

    def encode_tokens(self, a, b=None):
        """`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` as an Encoding, from the (id, start, end) lists
        of tokenize_with_offsets: for callers that cut the texts themselves (QA's context windows).
        MPNet's tokenizer (pair_separators 2) puts two separators between a and b, as RoBERTa's."""
        cls_tok, sep_tok = (self.cls_id, 0, 0), (self.sep_id, 0, 0)
        segments = [([cls_tok], 0, None), (a, 0, 0), ([sep_tok], 0, None)]
        if b is not None:
            segments += [([sep_tok], 0, None)] * (self.pair_separators - 1) + [(b, 1, 1), ([sep_tok], 1, None)]
        enc = Encoding([], [], [], [], [], [])
        for tokens, type_id, seq in segments:
            for token_id, start, end in tokens:
                enc.input_ids.append(token_id)
                enc.token_type_ids.append(type_id)
                enc.attention_mask.append(1)
                enc.offsets.append((start, end))
                enc.special_tokens_mask.append(int(seq is None))
                enc.sequence_ids.append(seq)
        return enc

    def encode_words(self, words, max_length=None):
        """`[CLS] pieces of each word [SEP]` for text already split into words, as (input_ids, word_ids).

        Each word is tokenized on its own (BertTokenizerFast's is_split_into_words=True),
        so no token spans two words; word_ids[t] is the index of the word token t came
        from, None for [CLS] and [SEP]. A word may give several tokens ("U.S." gives
        u . s .) or none (only control characters). With max_length, the tokens after
        the first max_length - 2 are dropped, cutting the last words short or off.
        """
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length {max_length} leaves no room for [CLS] and [SEP]")
        ids, word_ids = [self.cls_id], [None]
        for w, word in enumerate(words):
            for piece_id, _, _ in self.tokenize_with_offsets(word):
                ids.append(piece_id)
                word_ids.append(w)
        if max_length is not None:
            del ids[max_length - 1:], word_ids[max_length - 1:]
        return ids + [self.sep_id], word_ids + [None]

    def encode_batch(self, texts, pairs=None, max_length=None, truncation=False, padding="longest"):
        """Encodings of several texts (and pairs), padded to the longest ("longest"),
        to max_length ("max_length") or not at all (False)."""
        pairs = [None] * len(texts) if pairs is None else pairs
        if len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        encs = [self.encode_plus(t, p, max_length, truncation, padding if padding == "max_length" else False)
                for t, p in zip(texts, pairs)]
        if padding == "longest":
            longest = max((len(e.input_ids) for e in encs), default=0)
            for e in encs:
                self.pad(e, longest)
        elif padding not in (False, "max_length"):
            raise ValueError(f"padding must be False, 'longest' or 'max_length', got {padding!r}")
        return encs

    def pad(self, enc, length):
        """Pad an Encoding on the right with [PAD] to `length` tokens."""
        n = length - len(enc.input_ids)
        enc.input_ids += [self.pad_id] * n
        enc.token_type_ids += [0] * n
        enc.attention_mask += [0] * n
        enc.offsets += [(0, 0)] * n
        enc.special_tokens_mask += [1] * n
        enc.sequence_ids += [None] * n

    def convert_ids_to_tokens(self, ids):
        return look_up(self.itos, ids)

    def decode(self, ids, skip_special_tokens=True):
        """Tokens joined by spaces, "##" continuations glued to the piece before.

        Not the inverse of encode: case, accents and the spacing around punctuation are lost.
        An id outside the vocabulary is a ValueError."""
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t, i in zip(tokens, ids) if int(i) not in self.special_ids]
        return " ".join(tokens).replace(" ##", "")

    # ---------------------------------------------------------------- files

    def save(self, directory):
        """Write vocab.txt (one token a line, id = line number - 1) and tokenizer_config.json."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
            f.writelines(t + "\n" for t in self.itos)
        write_json(os.path.join(directory, "tokenizer_config.json"), {
            "tokenizer_class": self.tokenizer_class, "do_lower_case": self.lowercase,
            "unk_token": self.unk_token, "cls_token": self.cls_token, "sep_token": self.sep_token,
            "pad_token": self.pad_token, "mask_token": self.mask_token})

    @classmethod
    def load(cls, directory):
        """Read vocab.txt and, if present, tokenizer_config.json (do_lower_case, special tokens, the class;
        BertTokenizer's defaults otherwise: lower-casing on, [UNK] [CLS] [SEP] [PAD] [MASK]). MPNet's
        tokenizer is this WordPiece with <s> </s> <pad> <mask> named there (a sentence is <s> ... </s>)."""
        path = os.path.join(directory, "vocab.txt")
        try:
            with open(path, encoding="utf-8") as f:
                vocab = [line.rstrip("\r\n") for line in f]
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: not found") from None
        config_path = os.path.join(directory, "tokenizer_config.json")
        config = read_json(config_path) if os.path.exists(config_path) else {}
        names = {}
        for name in ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token"):
            value = config.get(name)
            if value:
                names[name] = value["content"] if isinstance(value, dict) else value
        try:
            return cls(vocab, lowercase=config.get("do_lower_case", True),
                       tokenizer_class=config.get("tokenizer_class", "BertTokenizer"), **names)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
