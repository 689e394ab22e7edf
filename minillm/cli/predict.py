"""Prediction with a fine-tuned model: `python finetune.py --task sentiment --predict "a gripping film"`.

Reads <out-dir>/best (config.json names its architecture, the tokenizer's files
sit beside it) and writes one JSON line per input: a label and its
probabilities for a sequence classifier, each word's tag and the entities for
a token classifier, the answer span for a question-answering model with its
score: the span's start logit plus its end logit (higher is surer; a logit sum,
not a probability, comparable between answers of one model). Text is written
as UTF-8, unescaped; blank lines of --predict-file are skipped.
"""

import json
import os
import sys

from minillm.checkpoint import load_safetensors, read_json
from minillm.models.auto import CLASSIFIERS, QUESTION_ANSWERERS, TOKEN_CLASSIFIERS, load_model, max_positions
from minillm.peft.lora import add_lora
from minillm.tasks import ner, qa
from minillm.tasks.batching import predict_probabilities
from minillm.tasks.classification import encode_all
from minillm.tokenizers import load_tokenizer


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
    encoded = encode_all(tokenizer, texts, min(args.max_length, max_positions(model.config)))
    for text, p in zip(texts, predict_probabilities(model, encoded, args.batch_size, model.pad_token_id)):
        yield {"text": text, "label": names[int(p.argmax())],
               "probabilities": {n: round(float(x), 4) for n, x in zip(names, p)}}


def predict_tags(args, model, tokenizer):
    """A token classifier's tag per word, and the entities, of each input text."""
    return ner.predict_entities(model, tokenizer, input_texts(args),
                                min(args.max_length, max_positions(model.config)), args.batch_size)


def predict_spans(args, model, tokenizer):
    """A QA model's answer to --predict QUESTION in --context TEXT, or to each question of --predict-file."""
    if args.predict and not args.context:
        sys.exit("error: a question answering model answers --predict QUESTION from --context TEXT")
    try:
        examples = ([{"id": "0", "question": args.predict, "context": args.context}] if args.predict
                    else qa.read_questions(args.predict_file))
        windows = qa.build_windows(tokenizer, examples, min(args.max_length, max_positions(model.config)),
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
    """Label (or answer) --predict / --predict-file with <out-dir>/best as its architecture does: JSON lines."""
    directory = os.path.join(args.out_dir, "best")
    config_path = os.path.join(directory, "config.json")
    if not os.path.exists(config_path):
        sys.exit(f"error: {config_path}: not found; fine-tune first (python finetune.py --task {args.task})")
    architecture = (read_json(config_path).get("architectures") or [None])[0]
    if architecture not in PREDICTORS:
        sys.exit(f"error: {config_path}: architecture {architecture!r} is not a fine-tuned model this can run "
                 f"({', '.join(PREDICTORS)})")
    model_class, predictor = PREDICTORS[architecture]
    model = load_fine_tuned(model_class, directory, os.path.join(args.out_dir, "adapter"))
    for line in predictor(args, model, load_tokenizer(directory)):
        print(json.dumps(line, ensure_ascii=False))


def load_fine_tuned(model_class, directory, adapter):
    """The model `directory` holds. A LoRA run's best/ holds its adapters' tensors too: the run's adapter
    directory (PEFT's adapter_config.json) says where they go, so they are added before loading."""
    config_path = os.path.join(adapter, "adapter_config.json")
    if not os.path.exists(config_path):
        return load_model(directory, model_class)  # a quantized best/ too (its config.json says so)
    lora = read_json(config_path)
    model = model_class.from_config_dict(read_json(os.path.join(directory, "config.json")), directory)
    add_lora(model, lora["r"], lora["lora_alpha"], 0.0, lora["target_modules"])
    path = os.path.join(directory, "model.safetensors")
    try:
        model.load_pretrained_state(load_safetensors(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return model
