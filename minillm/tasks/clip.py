"""Contrastive image-text and speech-text alignment (CLIP) on digits, zero-shot classification, and the
supervised baseline with the same tower.

Captions are built from templates ("a handwritten 7", "the number seven", "someone saying seven", ...).
A training step pairs each image (or recording) of a batch with a caption of its digit drawn at
random, and the loss is nn/contrastive.py's symmetric InfoNCE; two items of one batch that show the
same digit are both positives for each other's captions (the captions say nothing but the digit).
Zero-shot classification embeds every template of each digit, averages the unit vectors into one
prompt per digit (CLIP's prompt ensembling) and picks the nearest prompt.

When the text tower is frozen (a speech tower aligned to the text space an image CLIP learned, as
ImageBind aligns new modalities to a fixed one) its caption embeddings are computed once.
"""

from minillm.backend import host_rng, np, to_device, to_float, to_host
from minillm.data.fsdd import fsdd_split, load_fsdd, spectrograms
from minillm.data.mnist import image_pixels, load_mnist, mnist_split
from minillm.nn.contrastive import clip_loss_backward, clip_loss_forward, l2_normalize_forward
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tasks import metrics
from minillm.tasks.batching import EpochBatches, pad_batch
from minillm.tokenizers import WordPieceTokenizer
from minillm.training.task import EpochTask

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("a handwritten {digit}", "the number {word}", "someone saying {word}", "the digit {digit}",
             "a picture of a {word}", "a recording of the word {word}", "{digit}", "{word}",
             "a scribbled {word}", "a voice saying {digit}", "an image of the number {digit}",
             "the spoken digit {word}")
EVAL_BATCH = 500
N_FRAMES, N_MELS = 48, 32  # 48 frames 16 ms apart: 0.78 s, longer than 95% of the recordings


def media_splits(modality, data_dir=None, held_out_speaker=None):
    """{"train": (x, y), "held_out": (x, y)} host arrays: MNIST pixels in [0, 1] with every fifth image held
    out, or FSDD log-mel spectrograms (N, N_FRAMES, N_MELS) with one speaker (or indices 0-4) held out."""
    if modality == "image":
        images, labels = load_mnist(data_dir)
        x, split = image_pixels(images), mnist_split(len(labels))
        return {k: (x[rows], labels[rows]) for k, rows in split.items()}
    recordings = load_fsdd(data_dir)
    split = fsdd_split(recordings, held_out_speaker)
    return {k: (spectrograms([recordings[i] for i in rows], N_FRAMES, N_MELS),
                np.array([recordings[i].digit for i in rows])) for k, rows in split.items()}


def caption(template, digit):
    return template.format(digit=digit, word=WORDS[digit])


def caption_tokenizer():
    """WordPiece trained on every caption: with so few words, each is one piece (140 ids with the specials)."""
    return WordPieceTokenizer.train([caption(t, d) for t in TEMPLATES for d in range(10)], vocab_size=200)


class Captions:
    """Every (digit, template) caption as `[CLS] words [SEP]` ids; batches of them padded with [PAD]."""

    def __init__(self, tokenizer):
        self.pad_id = tokenizer.pad_id
        self.ids = [[tokenizer.encode_plus(caption(t, d)).input_ids for t in TEMPLATES] for d in range(10)]

    def batch(self, digits, templates):
        return pad_batch([self.ids[d][k] for d, k in zip(digits, templates)], self.pad_id)


def embed_in_batches(encode, x, batch=EVAL_BATCH):
    """encode over x's rows, a batch at a time, stacked on the host."""
    return np.concatenate([to_host(encode(to_device(x[i:i + batch]))) for i in range(0, len(x), batch)])


def caption_embeddings(model, captions):
    """(10, templates, D) unit vectors (on the device) of every caption, in evaluation mode."""
    model.eval()
    k = len(TEMPLATES)
    return model.encode_text(*captions.batch(np.repeat(np.arange(10), k), np.tile(np.arange(k), 10))).reshape(10, k, -1)


def prompt_embeddings(model, captions):
    """(10, D) unit vectors: each digit's caption embeddings over all templates, averaged, renormalised."""
    return to_host(l2_normalize_forward(caption_embeddings(model, captions).mean(axis=1))[0])


class CLIPTask(EpochTask):
    """The contrastive task; evaluate() is zero-shot accuracy on the held-out set."""

    def __init__(self, model, captions, train, held_out, batch_size, seed=1337, grad_accum=1):
        self.model, self.captions, self.seed, self.grad_accum = model, captions, seed, grad_accum
        (self.x, self.y), (self.x_held, self.y_held) = train, held_out  # host arrays
        self.batches = EpochBatches([1] * len(self.y), batch_size, seed, group_by_length=False)
        self.steps_per_epoch, self.tokens_per_step = self.batches.steps_per_epoch, batch_size
        self.text_table = None
        if not any(p.requires_grad for p in model.text_model.parameters()):
            self.text_table = caption_embeddings(model, captions)  # (10, templates, D) on the device
            model.train()

    def train_step(self, it, micro, scale):
        index = it * self.grad_accum + micro
        rows = np.asarray(self.batches(index))
        digits = self.y[rows]
        templates = host_rng((self.seed, index)).integers(0, len(TEMPLATES), len(rows))
        u = self.model.encode_media(self.x[rows])  # (B, D)
        if self.text_table is None:
            v = self.model.encode_text(*self.captions.batch(digits, templates))  # (B, D)
        else:
            v = self.text_table[to_device(digits), to_device(templates)]
        positives = to_device((digits[:, None] == digits[None, :]).astype(np.float32))
        loss, cache = clip_loss_forward(u, v, self.model.logit_scale.data, positives)
        du, dv, dt = clip_loss_backward(scale, cache)
        self.model.backward_media(du)
        if self.text_table is None:
            self.model.backward_text(dv)
        self.model.logit_scale.accumulate(dt)
        return to_float(loss)

    def media_embeddings(self, x):
        self.model.eval()
        return embed_in_batches(self.model.encode_media, x)

    def evaluate(self):
        sims = self.media_embeddings(self.x_held) @ prompt_embeddings(self.model, self.captions).T  # (N, 10)
        pred = sims.argmax(axis=1).tolist()
        return {"val_zero_shot_accuracy": metrics.accuracy(self.y_held.tolist(), pred),
                "logit_scale": float(np.exp(to_float(self.model.logit_scale.data)))}


class SupervisedMediaTask(EpochTask):
    """The baseline: cross-entropy on MediaClassifier's logits; evaluate() is held-out accuracy."""

    def __init__(self, model, train, held_out, batch_size, seed=1337, grad_accum=1):
        self.model, self.seed, self.grad_accum = model, seed, grad_accum
        (self.x, self.y), (self.x_held, self.y_held) = train, held_out
        self.batches = EpochBatches([1] * len(self.y), batch_size, seed, group_by_length=False)
        self.steps_per_epoch, self.tokens_per_step = self.batches.steps_per_epoch, batch_size

    def train_step(self, it, micro, scale):
        rows = np.asarray(self.batches(it * self.grad_accum + micro))
        loss, cache = cross_entropy_forward(self.model(self.x[rows]), to_device(self.y[rows]))
        self.model.backward(cross_entropy_backward(scale, cache))
        return to_float(loss)

    def evaluate(self):
        self.model.eval()
        logits = embed_in_batches(self.model, self.x_held)
        return {"val_accuracy": metrics.accuracy(self.y_held.tolist(), logits.argmax(axis=1).tolist())}
