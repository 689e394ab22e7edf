"""Zero-shot classification by label-description similarity in a sentence-embedding space.

Each label is written out as a few sentences, templates filled with its description ("This review
is positive.", "A positive review.", ...). With e(s) the unit sentence embedding of all-MiniLM-L6-v2
(tasks/sentence_embeddings.py):

    p_l = sum_m e(template_m(l)) / || sum_m e(template_m(l)) ||     the label's unit prototype
    y(x) = argmax_l  e(x) . p_l                                      cosine similarity

No labelled example is read: the training texts the few-shot runner passes are ignored.
"""

from minillm.backend import np

# the templates of each task; {} takes a label's description
TEMPLATES = {
    "sentiment": ["This review is {}.", "A {} review.", "The movie was {}.", "Overall, the film is {}."],
    "news": ["This is a news article about {}.", "A story about {}.", "News about {}.", "The topic is {}."],
    "intent": ["The user wants {}.", "A request about {}.", "Help me with {}.", "This is about {}."],
}
# readable descriptions of the class names that data/labelled.classification_data gives
DESCRIPTIONS = {
    "sentiment": {"negative": "bad", "positive": "good"},
    "news": {"World": "world politics", "Sports": "sports", "Business": "business and the economy",
             "Sci/Tech": "science and technology"},
    "intent": {"AddToPlaylist": "adding a song to a playlist", "BookRestaurant": "booking a table at a restaurant",
               "GetWeather": "the weather forecast", "PlayMusic": "playing some music",
               "RateBook": "rating a book", "SearchCreativeWork": "finding a song, a book, a film or a TV show",
               "SearchScreeningEvent": "movie times at the cinema"},
}


def label_prompts(task, names):
    """One list of filled templates per label, in label order."""
    if task not in TEMPLATES:
        raise KeyError(f"zero-shot has no templates for task {task!r}; it has {', '.join(TEMPLATES)}")
    missing = [n for n in names if n not in DESCRIPTIONS[task]]
    if missing:
        raise KeyError(f"zero-shot has no description of the {task} label(s) {missing}")
    return [[template.format(DESCRIPTIONS[task][name]) for template in TEMPLATES[task]] for name in names]


def label_prototypes(template_embeddings):
    """(L, M, D) unit embeddings of M templates for each of L labels -> (L, D) unit prototypes p_l."""
    total = template_embeddings.sum(axis=1)  # (L, D)
    return total / np.linalg.norm(total, axis=1, keepdims=True)


def zero_shot_predict(text_embeddings, template_embeddings):
    """The label of each text: argmax_l e(x) . p_l.  (N, D), (L, M, D) -> list of N ints."""
    return (text_embeddings @ label_prototypes(template_embeddings).T).argmax(axis=1).tolist()  # (N, L) -> (N,)


def zero_shot(train_texts, train_labels, test_texts, names, task, seed, encoder):
    """The few-shot runner's method "zero-shot": the training texts are not read."""
    prompts = label_prompts(task, names)
    flat = encoder.embed([p for label in prompts for p in label])  # (L * M, D)
    return zero_shot_predict(encoder.embed(test_texts), flat.reshape(len(names), len(prompts[0]), -1))
