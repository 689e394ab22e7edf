"""Cloze prompts for a masked LM (PET, Schick & Schuetze 2021): classification as filling in a blank.

A pattern turns a text into a cloze question with one [MASK], and a verbalizer names each label by
one word-piece:

    "a gripping film"  ->  "[CLS] a gripping film it was [MASK] . [SEP]",   negative: terrible, positive: great

The MLM head's scores s (V,) at the mask give each label y the logit s[v(y)] of its word:

    zero-shot     score(y) = log softmax(s)[v(y)]     (the MLM's log-probability of the word at the mask)
    fine-tuned    L = -log softmax_y(s[v(1)], ..., s[v(L)])[y]    cross-entropy over the label words alone,

backpropagated through the MLM head and the body (the head's tied decoder: the word embeddings).
`pet_predict` is the few-shot runner's method: K examples in, predictions out.
"""

import os

from minillm.backend import host_rng, np, to_device, to_float, xp
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.nn.functional import log_softmax
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tasks.batching import map_by_length, pad_batch
from minillm.tokenizers import load_tokenizer
from minillm.training.optim import AdamW

DEFAULT_MLM = os.path.join("out", "bert-imdb", "checkpoint")  # `python train.py --model bert` writes it
# task -> (pattern with {text} and one [MASK], the word of each label name)
PATTERNS = {
    "sentiment": ("{text} it was [MASK] .", {"negative": "terrible", "positive": "great"}),
    "news": ("[MASK] news : {text}", {"World": "world", "Sports": "sports", "Business": "business",
                                       "Sci/Tech": "science"}),
    "intent": ("{text} . this is about [MASK] .", {"AddToPlaylist": "add", "BookRestaurant": "restaurant",
                                                   "GetWeather": "rain", "PlayMusic": "music", "RateBook": "book",
                                                   "SearchCreativeWork": "show", "SearchScreeningEvent": "cinema"}),
}


def verbalizer_ids(tokenizer, words):
    """The vocabulary id of each word; a ValueError for a word that is not one word-piece."""
    ids = []
    for word in words:
        pieces = tokenizer.encode(word)
        if len(pieces) != 1 or pieces[0] == tokenizer.unk_id:
            raise ValueError(f"verbalizer word {word!r} is {len(pieces)} pieces {pieces} in this vocabulary; "
                             f"each label needs a single known word-piece")
        ids.append(pieces[0])
    return ids


def cloze_encode(tokenizer, text, pattern, max_length=128):
    """`[CLS] pattern(text) [SEP]` ids with exactly one [MASK]; the text is cut so that the pattern fits."""
    before, after = pattern.split("{text}")
    prefix, suffix = tokenizer.encode(before), tokenizer.encode(after)
    if (prefix + suffix).count(tokenizer.mask_id) != 1:
        raise ValueError(f"pattern {pattern!r} must hold one [MASK] outside {{text}}")
    budget = max_length - 2 - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"pattern {pattern!r} leaves no room for the text in {max_length} tokens")
    body = [i for i in tokenizer.encode(text) if i != tokenizer.mask_id][:budget]
    return [tokenizer.cls_id] + prefix + body + suffix + [tokenizer.sep_id]


# ---------------------------------------------------------------- the verbalizer's logits
def verbalizer_logits_forward(scores, word_ids):
    """scores: (B, V) MLM scores at the masks, word_ids: (L,) -> (B, L) the label words' logits."""
    word_ids = xp.asarray(word_ids)
    return scores[:, word_ids], (scores.shape, word_ids)


def verbalizer_logits_backward(dlogits, cache):
    """d scores: each label word's column gets its logit's gradient, every other column 0."""
    shape, word_ids = cache
    dscores = xp.zeros(shape, dtype=dlogits.dtype)
    dscores[:, word_ids] = dlogits  # distinct words: assignment is the sum
    return dscores


def mask_scores(model, ids, attention_mask, mask_id):
    """(B, V) MLM scores at each row's one [MASK] (a BertForPreTraining)."""
    return model(ids, attention_mask=attention_mask, mlm_mask=ids == mask_id)[0]


def zero_shot_scores(model, encoded, word_ids, pad_id, mask_id, batch_size=64):
    """(N, L) host array: log p(word of label l | the cloze of text n) under the MLM."""
    model.eval()
    return map_by_length(lambda ids, mask: log_softmax(mask_scores(model, ids, mask, mask_id))[:, xp.asarray(word_ids)],
                         encoded, batch_size, pad_id)


def verbalizer_loss(model, ids, attention_mask, labels, word_ids, mask_id, scale=1.0):
    """Cross-entropy over the label words' logits; adds the gradient of scale * loss to the parameters."""
    logits, cache = verbalizer_logits_forward(mask_scores(model, ids, attention_mask, mask_id), word_ids)  # (B, L)
    loss, ce_cache = cross_entropy_forward(logits, labels)
    model.backward(verbalizer_logits_backward(cross_entropy_backward(scale, ce_cache), cache))
    return to_float(loss)


def fine_tune(model, encoded, labels, word_ids, pad_id, mask_id, steps=100, batch_size=8, lr=1e-4, seed=0):
    """AdamW on the verbalizer loss, batches of the examples drawn by (seed, step); returns the losses."""
    optimizer, labels, losses = AdamW(model, lr=lr, weight_decay=0.01), np.asarray(labels), []
    model.train()
    for step in range(steps):
        rows = host_rng((seed, step)).choice(len(encoded), min(batch_size, len(encoded)), replace=False)
        ids, mask = pad_batch([encoded[r] for r in rows], pad_id)
        optimizer.zero_grad()
        losses.append(verbalizer_loss(model, ids, mask, to_device(labels[rows]), word_ids, mask_id))
        optimizer.step(max_grad_norm=1.0)
    return losses


def pet_predict(train_texts, train_labels, test_texts, names, task, seed, encoder=None, model_dir=DEFAULT_MLM,
                steps=100, batch_size=8, lr=1e-4, max_length=128):
    """The few-shot runner's method "pet": fine-tune the MLM on the K examples through task's pattern (none
    given: zero-shot) and label test_texts by their label words' scores. names: the label names, in label
    order; the runner's sentence encoder is not used (the MLM in model_dir reads the texts)."""
    tokenizer = load_tokenizer(model_dir)
    model = BertForPreTraining.from_pretrained(model_dir)
    pattern, words = PATTERNS[task]
    word_ids = verbalizer_ids(tokenizer, [words[n] for n in names])
    encode = [cloze_encode(tokenizer, t, pattern, max_length) for t in train_texts]
    if encode:
        fine_tune(model, encode, train_labels, word_ids, tokenizer.pad_id, tokenizer.mask_id, steps, batch_size, lr,
                  seed)
    test = [cloze_encode(tokenizer, t, pattern, max_length) for t in test_texts]
    scores = zero_shot_scores(model, test, word_ids, tokenizer.pad_id, tokenizer.mask_id)
    return scores.argmax(axis=1).tolist()  # (scores are on the host)
