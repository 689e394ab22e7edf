"""In-context learning with a GPT (Brown et al. 2020): K labelled demonstrations in the prompt, no training.

    Review: a gripping film                 a demonstration: the text and its label word
    Sentiment: positive

    Review: <the query>
    Sentiment:                              each label word's log-likelihood is scored after this

score(y) = sum_j log p(w_j | prompt, w_1 .. w_{j-1}) over the tokens w of " <label word of y>"
(several tokens under BPE), and the prediction is the label with the highest score. A prompt longer
than the model's context drops its oldest demonstrations, then, if the query alone is too long, the
start of the query.
"""

import os

from minillm.backend import host_rng, to_host, xp
from minillm.models.gpt import GPT
from minillm.nn.functional import log_softmax
from minillm.tokenizers import load_tokenizer

DEFAULT_GPT = os.path.join("out", "gpt-imdb-bpe", "checkpoint")  # train.py --data imdb --tokenizer bpe
# task -> (demonstration template with {text} and {label}, label name -> label word)
TEMPLATES = {
    "sentiment": ("Review: {text}\nSentiment:{label}\n\n", {"negative": " negative", "positive": " positive"}),
    "news": ("Article: {text}\nTopic:{label}\n\n", {"World": " world", "Sports": " sports",
                                                     "Business": " business", "Sci/Tech": " science"}),
    "intent": ("Request: {text}\nIntent:{label}\n\n", {"AddToPlaylist": " playlist", "BookRestaurant": " restaurant",
                                                       "GetWeather": " weather", "PlayMusic": " music",
                                                       "RateBook": " rating", "SearchCreativeWork": " search",
                                                       "SearchScreeningEvent": " cinema"}),
}


def prompt_ids(tokenizer, template, demonstrations, query, budget):
    """The ids of the demonstrations (text, label word) and the query up to its label, within budget tokens."""
    head, _ = template.split("{label}")
    query_ids = tokenizer.encode(head.format(text=query))
    demos = [tokenizer.encode(template.format(text=t, label=w)) for t, w in demonstrations]
    while demos and sum(map(len, demos)) + len(query_ids) > budget:
        demos.pop(0)  # the oldest first
    return [i for d in demos for i in d] + query_ids[-budget:]


def label_log_likelihoods(model, prompt, label_ids):
    """(L,) host: sum over each label's tokens of log p(token | prompt and the label's tokens before it)."""
    out = []
    for ids in label_ids:
        seq = prompt + ids
        logp = log_softmax(model(xp.asarray([seq[:-1]]))[0])  # (T - 1, V): row t predicts token t + 1
        rows = xp.arange(len(prompt) - 1, len(seq) - 1)
        out.append(float(to_host(logp[rows, xp.asarray(ids)].sum())))
    return out


def icl_predict(train_texts, train_labels, test_texts, names, task, seed, encoder=None, model_dir=DEFAULT_GPT):
    """The few-shot runner's method "icl": every test text scored after all K examples as demonstrations (in
    an order shuffled by seed; the oldest dropped when the context is full). names: label names in order;
    the runner's sentence encoder is not used (the GPT in model_dir reads the texts)."""
    tokenizer, model = load_tokenizer(model_dir), GPT.from_pretrained(model_dir)
    model.eval()
    template, words = TEMPLATES[task]
    label_ids = [tokenizer.encode(words[n]) for n in names]
    order = host_rng([seed, 5]).permutation(len(train_texts))
    demonstrations = [(train_texts[i], words[names[train_labels[i]]]) for i in order]
    budget = model.config.n_positions - max(map(len, label_ids)) + 1
    predictions = []
    for text in test_texts:
        scores = label_log_likelihoods(model, prompt_ids(tokenizer, template, demonstrations, text, budget), label_ids)
        predictions.append(max(range(len(scores)), key=scores.__getitem__))
    return predictions
