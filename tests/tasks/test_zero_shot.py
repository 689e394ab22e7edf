"""Zero-shot scoring: the argmax of cosine similarity to averaged, renormalised template embeddings."""

import pytest

from minillm.backend import np
from minillm.tasks.zero_shot import label_prompts, label_prototypes, zero_shot_predict


def test_prototypes_average_the_templates_and_renormalise():
    s = np.sqrt(0.5)
    templates = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # label 0: two templates at 90 degrees
                          [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])  # label 1: twice the same
    np.testing.assert_allclose(label_prototypes(templates), [[s, s, 0.0], [0.0, 0.0, 1.0]])
    texts = np.array([[0.6, 0.0, 0.8],  # cos 0.42 with label 0, 0.8 with label 1
                      [0.8, 0.6, 0.0],  # 0.99 against 0
                      [1.0, 0.0, 0.0]])  # 0.71 against 0
    assert zero_shot_predict(texts, templates) == [1, 0, 0]


def test_the_average_can_overrule_the_nearest_single_template():
    # the text is label 1's first template (cos 1), but label 1's templates disagree, so their average is far
    templates = np.array([[[0.8, 0.6], [0.8, 0.6]], [[0.6, 0.8], [0.6, -0.8]]])
    text = np.array([[0.6, 0.8]])  # cos with label 0's prototype 0.96; label 1's prototype is (1, 0): 0.6
    assert zero_shot_predict(text, templates) == [0]


def test_prompts_fill_each_template_with_the_description():
    prompts = label_prompts("sentiment", ["negative", "positive"])
    assert prompts[1][0] == "This review is good." and len(prompts[0]) == len(prompts[1]) >= 3
    with pytest.raises(KeyError, match="no description of the sentiment label"):
        label_prompts("sentiment", ["neutral"])
