"""Contextual augmentation on a tiny random BERT: every replacement is among the top-k whole words of the MLM's
distribution at its mask, the rest of the text stays, copies follow the originals, and it is seeded."""

from minillm.backend import np, to_host, xp
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.tasks.contextual_augmentation import augment, replacement_candidates, whole_word_ids
from minillm.tokenizers import WordPieceTokenizer

TEXTS = ["a great film with great acting", "a terrible film with a dull plot", "the acting was fine"]


def _setup():
    tokenizer = WordPieceTokenizer.train(TEXTS + ["some other words and pieces"], vocab_size=120)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=32, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return tokenizer, BertForPreTraining(cfg, seed=0, dtype="float64")


def test_replacements_come_from_the_top_k_of_the_mlm_at_the_mask():
    tokenizer, model = _setup()
    allowed = whole_word_ids(tokenizer)
    texts, labels = augment(TEXTS, [1, 0, 1], model, tokenizer, n_aug=3, alpha=0.2, seed=0, top_k=3)
    assert texts[:3] == TEXTS and labels == [1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1]
    for n, copy in enumerate(texts[3:]):
        original = TEXTS[n // 3].split()
        words = copy.split()
        assert len(words) == len(original)
        changed = [i for i, (a, b) in enumerate(zip(original, words)) if a != b]
        assert len(changed) == 1  # alpha 0.2 of 5 to 7 words: one word each
        i = changed[0]
        masked = ["[MASK]" if j == i else w for j, w in enumerate(original)]  # the MLM's view, by hand
        ids = tokenizer.encode_words(masked)[0]
        scores = to_host(model(xp.asarray([ids]))[0])[0][ids.index(tokenizer.mask_id)]  # (V,) every position
        ranked = [v for v in np.argsort(-scores) if allowed[v] and tokenizer.itos[v] != original[i]]
        assert words[i] in {tokenizer.itos[v] for v in ranked[:3]}
    again, _ = augment(TEXTS, [1, 0, 1], model, tokenizer, n_aug=3, alpha=0.2, seed=0, top_k=3)
    assert again == texts


def test_candidates_skip_the_original_and_non_words():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    allowed = np.array([True, False, True, True, True])
    ids, p = replacement_candidates(scores, 0, allowed, 2)
    assert ids.tolist() == [2, 3] and np.allclose(p, [np.e / (np.e + 1), 1 / (np.e + 1)])
