"""What the shared space of two CLIP runs is worth: `python -m minillm.tools.clip_eval`.

Reads an image CLIP (`--image`, from `python -m minillm.cli.clip --modality image`) and a speech CLIP
aligned to its frozen text tower (`--speech`, trained with `--text-from`), and measures on the
held-out images (MNIST index % 5 == 0) and recordings (FSDD: `--held-out-speaker`, else indices 0-4):

    zero-shot accuracy        nearest of the ten prompt ensembles
    retrieval R@1, R@5, P@10  image->text, text->image, speech->text, text->speech, speech->image,
                              image->speech; the texts are every template of every digit (120)
    linear probes             softmax regression on the frozen embeddings of the training items

and writes <out>.json, plus <out>.png: for a few held-out images, the image and the log-mel
spectrograms of its three nearest recordings (their digits and the nearest captions are in the JSON).
"""

import argparse
import json
import struct
import zlib

from minillm.backend import np, to_host
from minillm.checkpoint import write_json
from minillm.cli.errors import UsageError, run_main
from minillm.cli.settings import HelpFormatter
from minillm.data.fsdd import SPEAKERS
from minillm.models.clip import CLIPModel
from minillm.tasks.clip import (TEMPLATES, Captions, caption, caption_embeddings, embed_in_batches, media_splits,
                                prompt_embeddings)
from minillm.tasks.retrieval import linear_probe, retrieval_scores
from minillm.tokenizers import WordPieceTokenizer

def write_png(path, pixels):
    """An 8-bit greyscale PNG (signature, IHDR, one zlib-compressed IDAT, IEND) of a (H, W) uint8 array."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    h, w = pixels.shape
    rows = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))  # filter type 0 before every row
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def to_gray(a, size):
    """A 2-D array scaled to 0-255 and enlarged by repeating pixels to about size x size."""
    scale = max(1, size // max(a.shape))
    a = (a - a.min()) / max(float(a.max() - a.min()), 1e-9)
    return np.kron((255 * a).astype(np.uint8), np.ones((scale, scale), dtype=np.uint8))


def retrieval_picture(path, images, spectra, nearest):
    """One row per image: the image, then the spectrograms (time across, low frequencies at the bottom) of
    its nearest recordings, spectra[nearest[r]]."""
    tiles = [[to_gray(image, 112)] + [to_gray(spectra[j].T[::-1], 112) for j in rows]
             for image, rows in zip(images, nearest)]
    height = max(t.shape[0] for row in tiles for t in row) + 8
    width = max(sum(t.shape[1] + 8 for t in row) for row in tiles)
    canvas = np.full((height * len(tiles), width), 128, dtype=np.uint8)
    for r, row in enumerate(tiles):
        x = 0
        for t in row:
            canvas[r * height + 4:r * height + 4 + t.shape[0], x + 4:x + 4 + t.shape[1]] = t
            x += t.shape[1] + 8
    write_png(path, canvas)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--image", default="out/clip-image/best", help="the image CLIP checkpoint")
    p.add_argument("--speech", default="out/clip-speech/best", help="the speech CLIP checkpoint (its text tower "
                                                                  "frozen from --image)")
    p.add_argument("--held-out-speaker", choices=SPEAKERS, help="the speaker the speech run held out (default: "
                                                                "the dataset's own split)")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--out", default="out/clip-eval", help="writes <out>.json and <out>.png")
    p.add_argument("--probe-steps", type=int, default=300)
    args = p.parse_args(argv)
    image_model, speech_model = CLIPModel.from_pretrained(args.image), CLIPModel.from_pretrained(args.speech)
    if (image_model.config.modality, speech_model.config.modality) != ("image", "speech"):
        raise UsageError("--image must hold an image CLIP and --speech a speech CLIP")
    same = all(np.array_equal(to_host(a), to_host(b))  # read on the host, explicitly
               for a, b in zip(image_model.text_projection.state_dict().values(),
                               speech_model.text_projection.state_dict().values()))
    if not same:
        raise UsageError(f"{args.speech} has another text tower than {args.image}: train it with --text-from")
    captions = Captions(WordPieceTokenizer.load(args.image))
    image_model.eval()
    speech_model.eval()

    media = {m: media_splits(m, args.data_dir, args.held_out_speaker) for m in ("image", "speech")}
    models = {"image": image_model, "speech": speech_model}
    emb = {m: {k: embed_in_batches(models[m].encode_media, x) for k, (x, _) in media[m].items()} for m in media}
    y = {m: {k: labels for k, (_, labels) in media[m].items()} for m in media}
    k_templates = len(TEMPLATES)
    text_digits = np.repeat(np.arange(10), k_templates)
    texts = to_host(caption_embeddings(image_model, captions)).reshape(10 * k_templates, -1)  # digit-major
    prompts = prompt_embeddings(image_model, captions)

    report = {"image": args.image, "speech": args.speech, "held_out_images": len(y["image"]["held_out"]),
              "held_out_recordings": len(y["speech"]["held_out"]), "held_out_speaker": args.held_out_speaker}
    for m in ("image", "speech"):
        pred = (emb[m]["held_out"] @ prompts.T).argmax(axis=1)
        report[f"{m}_zero_shot_accuracy"] = float((pred == y[m]["held_out"]).mean())
        report[f"{m}_linear_probe"] = linear_probe(emb[m]["train"], y[m]["train"], emb[m]["held_out"],
                                                   y[m]["held_out"], steps=args.probe_steps)
    pairs = {"image->text": ("image", "text"), "text->image": ("text", "image"), "speech->text": ("speech", "text"),
             "text->speech": ("text", "speech"), "speech->image": ("speech", "image"),
             "image->speech": ("image", "speech")}
    vectors = {"image": (emb["image"]["held_out"], y["image"]["held_out"]),
               "speech": (emb["speech"]["held_out"], y["speech"]["held_out"]), "text": (texts, text_digits)}
    report["retrieval"] = {name: retrieval_scores(*vectors[q], *vectors[c]) for name, (q, c) in pairs.items()}

    shown = [int(np.flatnonzero(y["image"]["held_out"] == d)[0]) for d in (0, 3, 5, 7, 9)]
    near_speech = np.argsort(-(emb["image"]["held_out"][shown] @ emb["speech"]["held_out"].T), axis=1)[:, :3]
    near_text = np.argsort(-(emb["image"]["held_out"][shown] @ texts.T), axis=1)[:, :3]
    report["picture"] = [{"held_out_image": 5 * int(i), "digit": int(y["image"]["held_out"][i]),  # (index % 5 == 0)
                          "nearest_recordings_digits": y["speech"]["held_out"][near_speech[n]].tolist(),
                          "nearest_texts": [caption(TEMPLATES[t % k_templates], t // k_templates)
                                            for t in near_text[n]]}
                         for n, i in enumerate(shown)]
    retrieval_picture(args.out + ".png", media["image"]["held_out"][0][shown], media["speech"]["held_out"][0],
                      near_speech)
    write_json(args.out + ".json", report)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    run_main(main)
