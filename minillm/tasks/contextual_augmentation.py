"""Contextual augmentation (Kobayashi 2018): words replaced by what a masked LM predicts in their place.

A text is split into words on white space; n = max(1, int(alpha * words)) different words are
chosen at random and each becomes one [MASK] (whole words only: a word of several word-pieces is
masked as one). One forward pass of the MLM scores every mask; at each, the candidates are the
vocabulary's whole words (no "##" continuation, no special token, alphabetic) other than the word
that stood there, and the replacement is drawn from the top_k of them with probabilities
proportional to the MLM's. Unlike Kobayashi's label-conditional LM, the MLM here does not see the
label, so a replacement may flip it ("great" -> "bad"): part of what the augmentation's score measures.
augment() returns the originals and then n_aug copies of each, labels repeated, as EDA's eda() does.
"""

from minillm.backend import host_rng, np, to_host, xp


def whole_word_ids(tokenizer):
    """(V,) bool host array: the vocabulary entries that are whole alphabetic words."""
    return np.array([not t.startswith("##") and t.isalpha() for t in tokenizer.itos])


def replacement_candidates(scores, exclude, allowed, top_k):
    """(ids (top_k,), probabilities (top_k,)) of the best allowed words for one mask's scores (V,) host,
    the word in `exclude` left out; the probabilities are the MLM's softmax renormalised over them."""
    s = np.where(allowed, scores, -np.inf)
    s[exclude] = -np.inf
    ids = np.argsort(-s, kind="stable")[:top_k]
    p = np.exp(s[ids] - s[ids[0]])
    return ids, p / p.sum()


def augment(texts, labels, model, tokenizer, n_aug=4, alpha=0.1, seed=0, top_k=5, max_length=128):
    """(texts + their augmented copies, labels + the copies' labels), copies after the originals.

    model: a BertForPreTraining (its MLM head predicts the masked words); tokenizer: its WordPiece."""
    rng = host_rng([seed, 4])
    allowed = whole_word_ids(tokenizer)
    model.eval()
    new_texts, new_labels = list(texts), list(labels)
    for text, label in zip(texts, labels):
        words = text.split()
        _, word_ids = tokenizer.encode_words(words, max_length)
        seen = sorted({w for w in word_ids if w is not None})  # the words that fit in max_length
        for _ in range(n_aug):
            if not seen:
                new_texts.append(text)
                new_labels.append(label)
                continue
            chosen = sorted(rng.choice(seen, min(max(1, int(alpha * len(words))), len(seen)), replace=False))
            masked = ["[MASK]" if i in chosen else w for i, w in enumerate(words)]
            ids, _ = tokenizer.encode_words(masked, max_length)
            ids = xp.asarray([ids])
            scores = to_host(model(ids, mlm_mask=ids == tokenizer.mask_id)[0])  # (masks, V) in word order
            out = list(words)
            for row, i in zip(scores, chosen):
                original = tokenizer.encode(words[i])
                candidates, p = replacement_candidates(row, original[0] if len(original) == 1 else [], allowed,
                                                       top_k)
                out[i] = tokenizer.itos[candidates[rng.choice(len(candidates), p=p)]]
            new_texts.append(" ".join(out))
            new_labels.append(label)
    return new_texts, new_labels
