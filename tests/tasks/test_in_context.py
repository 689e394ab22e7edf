"""In-context learning on a tiny random GPT: the label scores equal log-likelihood sums by hand, the prompt keeps
the newest demonstrations within the context, and icl_predict runs from a saved checkpoint."""

from minillm.backend import np, to_host, xp
from minillm.models.gpt import GPT, GPTConfig
from minillm.tasks.in_context import TEMPLATES, icl_predict, label_log_likelihoods, prompt_ids
from minillm.tokenizers.char import CharTokenizer

TEMPLATE, WORDS = TEMPLATES["sentiment"]
TEXTS = ["a fine film", "a dull plot", "great", "bad acting"]


def _setup(n_positions=256):
    tokenizer = CharTokenizer.train(TEMPLATE + " ".join(TEXTS) + " negative positive")
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_positions=n_positions, n_embd=16, n_layer=1, n_head=2)
    return tokenizer, GPT(cfg, seed=0, dtype="float64")


def test_label_scores_are_log_likelihood_sums_by_hand():
    tokenizer, model = _setup()
    prompt = prompt_ids(tokenizer, TEMPLATE, [("a fine film", " positive")], "a dull plot", 200)
    labels = [tokenizer.encode(" negative"), tokenizer.encode(" positive")]
    scores = label_log_likelihoods(model, prompt, labels)
    for score, ids in zip(scores, labels):
        seq = prompt + ids
        logits = to_host(model(xp.asarray([seq])))[0]  # (T, V), every position
        by_hand = 0.0
        for t in range(len(prompt), len(seq)):  # token t is predicted by row t - 1
            row = logits[t - 1]
            by_hand += row[seq[t]] - row.max() - np.log(np.exp(row - row.max()).sum())
        assert abs(score - by_hand) < 1e-10


def test_the_prompt_drops_the_oldest_demonstrations_to_fit():
    tokenizer, _ = _setup()
    demos = [("a fine film", " positive"), ("a dull plot", " negative")]
    full = prompt_ids(tokenizer, TEMPLATE, demos, "great", 1000)
    assert tokenizer.decode(full) == ("Review: a fine film\nSentiment: positive\n\n"
                                      "Review: a dull plot\nSentiment: negative\n\nReview: great\nSentiment:")
    short = prompt_ids(tokenizer, TEMPLATE, demos, "great", len(full) - 1)
    assert tokenizer.decode(short) == "Review: a dull plot\nSentiment: negative\n\nReview: great\nSentiment:"
    assert tokenizer.decode(prompt_ids(tokenizer, TEMPLATE, demos, "great", 5)) == "ment:"


def test_icl_predict_from_a_checkpoint(tmp_path):
    tokenizer, model = _setup(n_positions=64)  # room for one demonstration at most
    model.save_pretrained(str(tmp_path), extra_files=tokenizer.save)
    predictions = icl_predict(TEXTS, [1, 0, 1, 0], TEXTS, ["negative", "positive"], "sentiment", 0,
                              model_dir=str(tmp_path))
    assert len(predictions) == 4 and set(predictions) <= {0, 1}
