"""The ARPA text format for backoff n-gram models (what SRILM and KenLM read and write).

    \\data\\
    ngram 1=3
    ngram 2=2

    \\1-grams:
    -1.2\\t<unk>\\t0
    -99\\t<s>\\t-0.3
    -0.4\\t</s>\\t0
    ...
    \\2-grams:
    -0.2\\t<s> </s>          (the highest order has no backoff column)

    \\end\\

Each entry is log10 p(w | ctx) of the n-gram `ctx w`, then, below the highest
order, log10 of its backoff weight as a context (absent means 0). We write
probabilities with Python's shortest round-trip repr, so reading our own file
gives back the very same numbers.
"""

import itertools

from minillm.backend import np
from minillm.models.ngram import BackoffModel
from minillm.models.ngram_counts import BOS, EOS, SPECIALS, Vocabulary, tokens_of

LOG10_MISSING_UNK = -100.0  # what KenLM gives <unk> when an ARPA file lacks it


def _ngram_words(model):
    """Per order, the (count, n) matrix of word ids of every stored n-gram (rows in table order)."""
    V = len(model.vocab)
    words = [np.arange(V)[:, None]]
    for keys in model.keys[1:]:
        words.append(np.concatenate([words[-1][keys // V], (keys % V)[:, None]], axis=1))
    return words


def write_arpa(model, path):
    """Write a BackoffModel (Kneser-Ney or one read from ARPA) to `path`."""
    if not isinstance(model, BackoffModel):
        raise TypeError(f"only backoff models have an ARPA form; {type(model).__name__} "
                        f"({model.smoothing}) does not (its add-k mass covers every unseen n-gram)")
    blank = next((w for w in model.vocab.words if tokens_of(w) != [w]), None)
    if blank is not None:
        raise ValueError(f"the word {blank!r} cannot be written in ARPA, whose words are separated by blanks "
                         "(character models with a space token have no ARPA form)")
    names = np.array(model.vocab.words, dtype=object)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, keys in enumerate(model.keys, 1):
            f.write(f"ngram {n}={len(keys)}\n")
        for n, ids in enumerate(_ngram_words(model), 1):
            f.write(f"\n\\{n}-grams:\n")
            grams = [" ".join(g) for g in names[ids].tolist()]
            probs = model.log10_p[n - 1].tolist()
            if n < model.order:
                backoffs = model.log10_backoff[n - 1].tolist()
                f.writelines(f"{p!r}\t{g}\t{b!r}\n" for p, g, b in zip(probs, grams, backoffs))
            else:
                f.writelines(f"{p!r}\t{g}\n" for p, g in zip(probs, grams))
        f.write("\n\\end\\\n")


def _section(path, n, lines, first):
    """The lines of the n-grams section (file line `first` + 1 onwards) -> (line numbers, words, p, backoff)."""
    fields = list(map(tokens_of, lines))  # split on ASCII blanks only: words may hold other spaces (U+0085)
    sizes = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    bad = np.flatnonzero((sizes != 0) & (sizes != n + 1) & (sizes != n + 2))
    if len(bad):
        raise ValueError(f"{path}:{first + 1 + bad[0]}: a {n}-gram line needs log10 p, {n} words and an "
                         f"optional backoff; found {sizes[bad[0]]} fields")
    kept = np.flatnonzero(sizes)
    fields = [fields[i] for i in kept]
    try:
        probs = np.array([f[0] for f in fields], dtype=np.float64)
        backoffs = np.array([f[n + 1] if len(f) == n + 2 else "0" for f in fields], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: in the {n}-grams, log10 values must be numbers ({err})") from None
    return first + 1 + kept, [f[1:n + 1] for f in fields], probs, backoffs


def _parse(path):
    """ARPA file -> {n: (line numbers, words, log10 p, log10 backoff)} with the counts checked."""
    with open(path, encoding="utf-8", newline="") as f:  # lines end at \n only, as KenLM reads them
        lines = f.read().split("\n")
    marks = [i for i, line in enumerate(lines) if line.startswith("\\")]  # \data\, \n-grams:, \end\
    if not marks or lines[marks[0]].strip() != "\\data\\":  # text before \data\ is a free-form header
        raise ValueError(f"{path}: no \\data\\ line: not an ARPA file")
    if lines[marks[-1]].strip() != "\\end\\":
        raise ValueError(f"{path}: missing \\end\\")
    declared = {}
    for i in range(marks[0] + 1, marks[1]):
        line = lines[i].strip()
        order, _, count = line[6:].partition("=")
        if not line:
            continue
        if not line.startswith("ngram ") or not order.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"{path}:{i + 1}: bad count line {line!r}, expected 'ngram N=COUNT'")
        declared[int(order)] = int(count)
    if sorted(declared) != list(range(1, len(declared) + 1)):
        raise ValueError(f"{path}: the orders in \\data\\ {sorted(declared)} are not 1..n")
    entries = {}
    for begin, end in zip(marks[1:-1], marks[2:]):
        header = lines[begin].strip()
        n = int(header[1:header.index("-")]) if header.endswith("-grams:") else None
        if n not in declared:
            raise ValueError(f"{path}:{begin + 1}: unexpected section {header!r}")
        entries[n] = _section(path, n, lines[begin + 1:end], begin + 1)
        if len(entries[n][0]) != declared[n]:
            raise ValueError(f"{path}: \\data\\ declares {declared[n]} {n}-grams, the file lists {len(entries[n][0])}")
    missing = set(declared) - set(entries)
    if missing:
        raise ValueError(f"{path}: no section for the {min(missing)}-grams")
    return entries


def read_arpa(path):
    """Read an ARPA file (ours, KenLM's, SRILM's) into a BackoffModel."""
    entries = _parse(path)
    numbers, words, probs, backoffs = entries[1]
    unigrams = [w[0] for w in words]
    for special in (BOS, EOS):
        if special not in unigrams:
            raise ValueError(f"{path}: the 1-grams lack {special}")
    vocab = Vocabulary(list(SPECIALS) + [w for w in dict.fromkeys(unigrams) if w not in SPECIALS])
    if len(set(unigrams)) != len(unigrams):
        raise ValueError(f"{path}: a 1-gram is listed twice")
    V = len(vocab)
    ids = vocab.ids(unigrams)
    log10_p = [np.full(V, LOG10_MISSING_UNK)]
    log10_bo = [np.zeros(V)]
    log10_p[0][ids] = probs
    log10_bo[0][ids] = backoffs
    model = BackoffModel(vocab, [np.arange(V)], log10_p, log10_bo)
    for n in range(2, len(entries) + 1):
        numbers, words, probs, backoffs = entries[n]
        try:
            grams = np.fromiter(map(vocab.index.__getitem__, itertools.chain.from_iterable(words)),
                                dtype=np.int64, count=n * len(words)).reshape(len(words), n)
        except KeyError as err:
            raise ValueError(f"{path}: the {n}-grams use the word {err.args[0]} that is no 1-gram") from None
        prefix = model.context_rows(grams[:, :-1])[-1]  # row of w1..w(n-1) in the (n-1)-grams
        if (prefix < 0).any():
            line = numbers[int(np.flatnonzero(prefix < 0)[0])]
            raise ValueError(f"{path}:{line}: this {n}-gram's first {n - 1} words are not listed as an {n - 1}-gram")
        keys = prefix * V + grams[:, -1]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        if (keys[1:] == keys[:-1]).any():
            line = numbers[int(order[1:][keys[1:] == keys[:-1]][0])]
            raise ValueError(f"{path}:{line}: this {n}-gram is listed twice")
        model.keys.append(keys)
        model.log10_p.append(np.array(probs)[order])
        model.log10_backoff.append(np.array(backoffs)[order])
        model.order = n
    return model
