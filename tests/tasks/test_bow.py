"""Training the bag-of-n-grams baselines: softmax regression fits, real-data scores."""

import math

import pytest

from minillm.backend import np
from minillm.data.labelled import classification_data
from minillm.models import bow
from minillm.tasks.bow import fit_softmax_regression


def test_softmax_regression_fits_a_separable_toy_set():
    texts = ["good fun", "great good", "fun great film", "bad dull", "awful bad", "dull awful film"] * 4
    labels = [1, 1, 1, 0, 0, 0] * 4
    vectorizer = bow.NgramVectorizer(tfidf=True).fit(texts)
    model = fit_softmax_regression(vectorizer.transform(texts), labels, epochs=20, lr=0.1, batch_size=4)
    assert model.predict(vectorizer.transform(["good film", "awful film"])).tolist() == [1, 0]
    assert model.losses[-1] < 0.1 < math.log(2) == pytest.approx(model.losses[0])
    assert model.predict_proba(vectorizer.transform(["good"])).sum() == pytest.approx(1.0)


def test_snips_intent_baselines_on_real_data():
    splits, names, _ = classification_data("intent")
    assert len(names) == 7
    (train_texts, train_labels), (dev_texts, dev_labels) = splits["train"], splits["dev"]
    vectorizer = bow.NgramVectorizer().fit(train_texts)
    nb = bow.MultinomialNB().fit(vectorizer.transform(train_texts), train_labels)
    accuracy = np.mean(nb.predict(vectorizer.transform(dev_texts)) == np.array(dev_labels))
    assert accuracy > 0.96  # 97.86% with the defaults
    with pytest.raises(ValueError, match="unknown classification task"):
        classification_data("poetry")
    with pytest.raises(ValueError, match="not 'sst2'"):
        classification_data("news", "sst2")
