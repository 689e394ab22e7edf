"""Prediction with a fine-tuned model: `python finetune.py --task sentiment --predict "a gripping film"`.

Reads <out-dir>/best (config.json names its architecture, the tokenizer's files
sit beside it) and writes one JSON line per input: a label and its
probabilities for a sequence classifier, each word's tag and the entities for
a token classifier, the answer span for a question-answering model with its
score: the span's start logit plus its end logit (higher is surer; a logit sum,
not a probability, comparable between answers of one model). Text is written
as UTF-8, unescaped; blank lines of --predict-file are skipped. A --peft run's
best/ is read with its adapter directory; `--adapter-dir A B ...` predicts with
several adapters over their base, loaded once.
"""

import json
import os
import sys

from minillm.checkpoint import load_safetensors, read_json
from minillm.cli.errors import UsageError
from minillm.cli.finetune_args import checkpoint_dir
from minillm.models.auto import CLASSIFIERS, QUESTION_ANSWERERS, TOKEN_CLASSIFIERS, load_model, max_positions
from minillm.models.pretrained import resolve_init
from minillm.peft.methods import add_from_config, load_adapter
from minillm.peft.model import set_adapter, virtual_tokens
from minillm.tasks import ner, qa
from minillm.tasks.batching import predict_probabilities
from minillm.tasks.classification import encode_all
from minillm.tokenizers import load_tokenizer


def max_tokens(model, args):
    """Tokens a text may keep: --max-length, and room for the positions (virtual tokens included)."""
    return min(args.max_length, max_positions(model.config) - virtual_tokens(model))


def input_texts(args):
    """--predict's text, or every line of --predict-file that is not blank."""
    if args.predict:
        return [args.predict]
    with open(args.predict_file, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def predict_labels(args, model, tokenizer):
    """A sequence classifier's label and probabilities for each input text."""
    names = model.label_names
    texts = input_texts(args)
    encoded = encode_all(tokenizer, texts, max_tokens(model, args))
    for text, p in zip(texts, predict_probabilities(model, encoded, args.batch_size, model.pad_token_id)):
        yield {"text": text, "label": names[int(p.argmax())],
               "probabilities": {n: round(float(x), 4) for n, x in zip(names, p)}}


def predict_tags(args, model, tokenizer):
    """A token classifier's tag per word, and the entities, of each input text."""
    return ner.predict_entities(model, tokenizer, input_texts(args),
                                max_tokens(model, args), args.batch_size)


def predict_spans(args, model, tokenizer):
    """A QA model's answer to --predict QUESTION in --context TEXT, or to each question of --predict-file."""
    if args.predict and not args.context:
        sys.exit("error: a question answering model answers --predict QUESTION from --context TEXT")
    try:
        examples = ([{"id": "0", "question": args.predict, "context": args.context}] if args.predict
                    else qa.read_questions(args.predict_file))
        windows = qa.build_windows(tokenizer, examples, max_tokens(model, args),
                                   args.doc_stride, args.max_query_length)
    except ValueError as err:
        sys.exit(f"error: {err}")
    answers, _ = qa.predict_answers(model, windows, examples, args.batch_size, model.pad_token_id,
                                    args.max_answer_length)
    for e in examples:
        yield {"question": e["question"], "answer": answers[e["id"]]["text"],
               "score": round(answers[e["id"]]["score"], 4)}


# architecture in a saved config.json -> (its task model class, what answers --predict with it)
PREDICTORS = {**{c.architecture: (c, predict_labels) for c in CLASSIFIERS.values()},
              **{c.architecture: (c, predict_tags) for c in TOKEN_CLASSIFIERS.values()},
              **{c.architecture: (c, predict_spans) for c in QUESTION_ANSWERERS.values()}}


def predict(args):
    """Label (or answer) --predict / --predict-file with <out-dir>/best as its architecture does: JSON lines;
    with --adapter-dir, with each adapter in turn over their base."""
    if args.adapter_dir:
        return predict_with_adapters(args)
    directory = os.path.join(args.out_dir, "best")
    model_class, predictor = predictor_of(os.path.join(directory, "config.json"),
                                          f"fine-tune first (python finetune.py --task {args.task})")
    model = load_fine_tuned(model_class, directory, os.path.join(args.out_dir, "adapter"))
    for line in predictor(args, model, load_tokenizer(directory)):
        print(json.dumps(line, ensure_ascii=False))


def predictor_of(config_path, hint):
    """(task model class, predictor) for the architecture a config.json names."""
    if not os.path.exists(config_path):
        sys.exit(f"error: {config_path}: not found; {hint}")
    architecture = (read_json(config_path).get("architectures") or [None])[0]
    if architecture not in PREDICTORS:
        sys.exit(f"error: {config_path}: architecture {architecture!r} is not a fine-tuned model this can run "
                 f"({', '.join(PREDICTORS)})")
    return PREDICTORS[architecture]


def load_fine_tuned(model_class, directory, adapter):
    """The model `directory` holds. A --peft run's best/ holds its adapter's tensors too: the run's adapter
    directory (PEFT's adapter_config.json) says what they are, so that structure is added before loading."""
    if not os.path.exists(os.path.join(adapter, "adapter_config.json")):
        return load_model(directory, model_class)  # a quantized best/ too (its config.json says so)
    model = model_class.from_config_dict(read_json(os.path.join(directory, "config.json")), directory)
    add_from_config(model, adapter)
    path = os.path.join(directory, "model.safetensors")
    try:
        model.load_pretrained_state(load_safetensors(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return model


def base_with_adapters(adapter_dirs):
    """(task model, tokenizer, predictor): the base the adapters name, loaded once, each adapter loaded over
    it under its directory's name (the last one active). The adapters must share the base, the task model's
    architecture and labels (their config.json)."""
    first = adapter_dirs[0]
    model_class, predictor = predictor_of(os.path.join(first, "config.json"), "not an adapter finetune.py saved")
    task_config = read_json(os.path.join(first, "config.json"))
    base = read_json(os.path.join(first, "adapter_config.json")).get("base_model_name_or_path")
    for directory in adapter_dirs[1:]:
        other = read_json(os.path.join(directory, "adapter_config.json")).get("base_model_name_or_path")
        if read_json(os.path.join(directory, "config.json")) != task_config or other != base:
            raise UsageError(f"--adapter-dir {directory}: another base or task than {first} (base {other!r} vs "
                             f"{base!r}, or another architecture or labels in config.json)")
    source = checkpoint_dir(resolve_init(base))
    model = model_class.from_config_dict(task_config, first)
    model.load_backbone(load_safetensors(os.path.join(source, "model.safetensors")))
    model.eval()
    for directory in adapter_dirs:
        load_adapter(model, directory, directory)
    return model, load_tokenizer(source), predictor


def predict_with_adapters(args):
    """--adapter-dir A B ...: the base loaded once, then each adapter made active in turn (peft/model.py's
    set_adapter); each output line says which adapter answered."""
    model, tokenizer, predictor = base_with_adapters(args.adapter_dir)
    for directory in args.adapter_dir:
        set_adapter(model, directory)
        for line in predictor(args, model, tokenizer):
            print(json.dumps({"adapter": directory, **line}, ensure_ascii=False))
