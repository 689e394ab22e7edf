"""Learning merges: the training loop shared by byte-level BPE and WordPiece.

A corpus is summarised as word counts, each word a tuple of symbol ids.
Each step merges the adjacent pair (a, b) with the highest count

    count(a, b) = sum over words w of freq(w) * #{i : w[i] = a, w[i+1] = b}

into one symbol. Ties are broken by the smallest pair (a, b) in id order, so
training is deterministic. Two versions produce the same merges:

- `learn_merges` keeps the pair counts between steps and, after a merge,
  updates only the words that contain the merged pair. An index
  pair -> words finds them, and a heap of (-count, pair) finds the maximum.
  Heap entries are never removed: when a pair's count changes a new entry is
  pushed, and a popped entry whose count is out of date is skipped.
- `learn_merges_naive` recounts every pair of every word at every step: the
  textbook loop, kept as the reference the tests compare against and as the
  baseline of the benchmark (python -m minillm.tools.tokenizer_bench).

Both are generators: the caller decides when to stop (BPE after a number of
merges, WordPiece when its vocabulary of strings is full) and names the merged
symbol through `merged_id(a, b)`, which may return an existing id when two
different pairs spell the same string.
"""

import heapq
from collections import defaultdict


def merge_word(word, pair, new):
    """The word with every non-overlapping occurrence of `pair`, left to right, replaced by `new`."""
    a, b = pair
    out = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def learn_merges(word_counts, merged_id):
    """Yield (pair, new_id, count) for each merge, updating counts incrementally.

    word_counts: {tuple of symbol ids: frequency}. merged_id(a, b) -> id of the merged symbol.
    """
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    counts = defaultdict(int)  # pair -> weighted count over the corpus
    where = defaultdict(set)  # pair -> indices of words that contained it when last touched
    for i, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            counts[pair] += freq
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    while heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair) != -neg:
            continue  # stale entry: a newer one holds this pair's current count
        new = merged_id(*pair)
        yield pair, new, -neg
        delta = defaultdict(int)
        for i in where.pop(pair):
            word, freq = words[i], freqs[i]
            merged = merge_word(word, pair, new)
            if len(merged) == len(word):
                continue  # the index is lazy: this word lost the pair in an earlier merge
            for p in zip(word, word[1:]):
                delta[p] -= freq
            for p in zip(merged, merged[1:]):
                delta[p] += freq
                where[p].add(i)
            words[i] = merged
        for p, d in delta.items():
            if d == 0:
                continue
            counts[p] += d
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
            else:
                del counts[p]
                where.pop(p, None)


def learn_merges_naive(word_counts, merged_id):
    """Yield the same merges as `learn_merges`, recounting the whole corpus at every step."""
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    while True:
        counts = defaultdict(int)
        for word, freq in zip(words, freqs):
            for pair in zip(word, word[1:]):
                counts[pair] += freq
        if not counts:
            return
        pair = min(counts, key=lambda p: (-counts[p], p))
        new = merged_id(*pair)
        yield pair, new, counts[pair]
        words = [merge_word(w, pair, new) for w in words]
