"""The CLIP task: captions, prompt ensembles, a training step that lowers the loss, frozen text, the baseline."""

from minillm.backend import np, to_float, to_host
from minillm.models.clip import CLIPConfig, CLIPModel, MediaClassifier
from minillm.tasks.clip import (TEMPLATES, WORDS, Captions, CLIPTask, SupervisedMediaTask, caption,
                                caption_tokenizer, prompt_embeddings)
from minillm.training.optim import AdamW


def _data(n, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = (rng.random((n, 4, 4)) * 0.1 + y[:, None, None] / 10).astype(np.float32)  # brightness tells the digit
    return x, y


def _model(tokenizer, cls=CLIPModel):
    cfg = CLIPConfig(input_size=(4, 4), patch_size=2, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, text_vocab_size=tokenizer.vocab_size, projection_dim=8)
    return cls(cfg, seed=0)


def test_captions_are_whole_words():
    tokenizer = caption_tokenizer()
    assert caption(TEMPLATES[1], 7) == "the number seven" and caption(TEMPLATES[0], 7) == "a handwritten 7"
    captions = Captions(tokenizer)
    ids, mask = captions.batch([7, 3], [1, 6])
    assert tokenizer.convert_ids_to_tokens(to_host(ids)[0].tolist()) == ["[CLS]", "the", "number", "seven", "[SEP]"]
    assert to_host(mask).tolist() == [[1] * 5, [1, 1, 1, 0, 0]]  # "[CLS] 3 [SEP]" padded
    assert all(tokenizer.convert_ids_to_tokens(tokenizer.encode(w)) == [w] for w in WORDS)


def test_clip_task_learns_and_evaluates():
    tokenizer = caption_tokenizer()
    model = _model(tokenizer)
    task = CLIPTask(model, Captions(tokenizer), _data(40, 0), _data(20, 1), batch_size=20, seed=0)
    prompts = prompt_embeddings(model, task.captions)
    assert prompts.shape == (10, 8) and np.allclose((prompts ** 2).sum(axis=1), 1.0, atol=1e-5)
    model.train()
    optimizer = AdamW(model, 1e-3)
    losses = []
    for _ in range(25):  # step 0's batch (and captions) again and again: the loss must fall
        losses.append(task.train_step(0, 0, 1.0))
        optimizer.step(1e-3)
        optimizer.zero_grad()
    assert losses[-1] < losses[0] - 0.5, losses
    metrics = task.evaluate()
    assert 0.0 <= metrics["val_zero_shot_accuracy"] <= 1.0 and metrics["logit_scale"] > 1.0


def test_frozen_text_tower_uses_a_table_of_caption_embeddings():
    tokenizer = caption_tokenizer()
    model = _model(tokenizer)
    model.text_model.requires_grad_(False)
    model.text_projection.requires_grad_(False)
    task = CLIPTask(model, Captions(tokenizer), _data(20, 0), _data(10, 1), batch_size=10, seed=0)
    expected = model.eval().encode_text(*task.captions.batch([4], [2]))
    assert np.allclose(to_host(task.text_table[4, 2]), to_host(expected[0]), atol=1e-6)
    model.train()
    task.train_step(0, 0, 1.0)
    assert model.text_projection.weight.grad is None and model.vision_model.embeddings.cls_token.grad is not None
    assert model.logit_scale.grad is not None


def test_supervised_baseline_step_and_accuracy():
    tokenizer = caption_tokenizer()
    model = _model(tokenizer, MediaClassifier)
    task = SupervisedMediaTask(model, _data(30, 0), _data(10, 1), batch_size=10, seed=0)
    assert to_float(task.train_step(0, 0, 1.0)) > 2.0  # about log 10 at the start
    assert task.evaluate()["val_accuracy"] in [i / 10 for i in range(11)]
