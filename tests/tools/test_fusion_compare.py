"""fusion_compare on two tiny CLIPs: both fusion models train and report held-out accuracies."""

from minillm.backend import np
from minillm.tasks.fusion import match_pairs, prompt_rule_accuracy
from minillm.tools import fusion_compare


def test_hard_negatives_are_the_nearest_other_digit():
    speech_emb, speech_y = np.array([[1.0, 0.0]]), np.array([3])
    image_emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    image_y = np.array([3, 5, 3, 8])
    rows, images, labels = match_pairs(speech_emb, speech_y, image_emb, image_y, [0], np.random.default_rng(0), pool=2)
    assert rows.tolist() == [0, 0] and labels.tolist() == [1, 0]
    assert images[0] in (0, 2) and images[1] == 1  # of the two other-digit images, image 1 is nearer


def test_prompt_rule_by_hand():
    prompts = np.eye(3)
    speech_emb = np.array([[1.0, 0, 0], [0, 1.0, 0]])  # nearest prompts: 0, 1
    image_emb = np.array([[0.9, 0.1, 0], [0, 0, 1.0]])  # nearest prompts: 0, 2
    pairs = (np.array([0, 1, 1]), np.array([0, 1, 0]), np.array([1, 1, 0]))
    # (0, 0): same digit, a match, right; (1, 1): digits 1 and 2, said no, but labelled 1: wrong; (1, 0): right
    assert prompt_rule_accuracy(pairs, speech_emb, image_emb, prompts) == 2 / 3


def test_both_fusions_train(tiny_clips, tmp_path):
    image, speech, speaker = tiny_clips["image"], tiny_clips["speech"], tiny_clips["speaker"]
    report = fusion_compare.main(["--image", image, "--speech", speech, "--held-out-speaker", speaker,
                                  "--out-dir", str(tmp_path), "--max-iters", "2", "--eval-interval", "2",
                                  "--batch-size", "8", "--no-progress"])
    assert report["held_out_pairs"] == 1000
    for fusion in ("cross", "late"):
        assert 0.0 <= report[fusion]["val_accuracy_hard_negatives"] <= 1.0
        assert 0.0 <= report[fusion]["val_accuracy_random_negatives"] <= 1.0
    assert 0.0 <= report["prompt_rule"]["val_accuracy_hard_negatives"] <= 1.0
    assert report["cross"]["parameters"] > 0 and (tmp_path / "fusion.json").exists()
