"""`python sample.py`: sample text from a trained GPT checkpoint (the entry point runs this).

Generation uses the model's KV cache, so each new token costs one position's
worth of work instead of a pass over the whole context.
"""

import argparse
import os

from minillm import backend
from minillm.checkpoint import read_json
from minillm.cli.errors import UsageError, run_main
from minillm.cli.settings import HelpFormatter
from minillm.models.auto import load_model
from minillm.models.gpt import GPT
from minillm.tokenizers import load_tokenizer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--out-dir", default="out/shakespeare-char", help="run directory (or a checkpoint directory)")
    p.add_argument("--start", default="\n", help="the prompt")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    p.add_argument("--top-k", type=int, default=200, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    args = p.parse_args(argv)
    backend.use(args.device)
    directory = os.path.join(args.out_dir, "checkpoint")
    if not os.path.isdir(directory):
        directory = args.out_dir
    config_path = os.path.join(directory, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path}: not found; train a GPT first (python train.py --out-dir "
                                f"{args.out_dir})")
    model_type = read_json(config_path).get("model_type")
    if model_type != "gpt2":
        raise UsageError(f"{config_path}: model_type {model_type!r}; sample.py samples from a GPT checkpoint "
                         "(model_type 'gpt2', from python train.py --model gpt)")
    model, tokenizer = load_model(directory, GPT), load_tokenizer(directory)  # float or quantized
    rng = backend.default_rng(args.seed)
    prompt = backend.to_device([tokenizer.encode(args.start)] * args.num_samples)
    out = model.generate(prompt, args.max_new_tokens, args.temperature, args.top_k or None, rng)
    texts = [tokenizer.decode(row) for row in backend.to_host(out).tolist()]
    for text in texts:
        print(text)
        print("---------------")
    return texts


if __name__ == "__main__":
    run_main(main)
