"""minillm's adapters against Hugging Face PEFT: `python -m minillm.tools.peft_reference --adapter DIR`.

Both directions of PEFT's file layout, on the same token ids:

    read   PEFT loads DIR (an adapter finetune.py --peft wrote) over transformers'
           BertForSequenceClassification: PeftModel.from_pretrained(base, DIR) must
           predict what minillm predicts with DIR over its own base.
    write  PEFT wraps the base with DIR's adapter_config.json, redraws every tensor
           it trains (so the check is not of PEFT's zero start) and saves with
           save_pretrained; minillm loads that directory and must predict what
           PEFT does.

Prints the largest logit difference of each, over the first --examples SST-2
dev sentences, each run alone through PyTorch and in length-sorted padded
batches through minillm. transformers, peft and torch are imported only here,
in a separate environment: none of them is ever a requirement of minillm.
"""

import argparse
import importlib.util
import os
import shutil
import tempfile

from minillm.backend import np
from minillm.checkpoint import read_json
from minillm.cli.errors import run_main
from minillm.cli.finetune_args import checkpoint_dir
from minillm.cli.predict import base_with_adapters
from minillm.cli.settings import HelpFormatter
from minillm.data.labelled import sst2
from minillm.models.pretrained import resolve_init
from minillm.peft.model import set_adapter
from minillm.tasks.batching import map_by_length
from minillm.tasks.classification import encode_all, tokenizer_pad_id
from minillm.tokenizers import load_tokenizer


def minillm_logits(adapter_dir, sequences):
    """(N, K) logits on the host of the task model with the adapter in `adapter_dir` over its base."""
    model, tokenizer, _ = base_with_adapters([adapter_dir])
    set_adapter(model, adapter_dir)
    return map_by_length(lambda ids, mask: model(ids, mask), sequences, 16, tokenizer_pad_id(tokenizer))


def peft_model(base_path, adapter_dir=None, config=None, num_labels=2):
    """PEFT's model over transformers' BERT classifier: the adapter in `adapter_dir`, or a new one of `config`."""
    import transformers
    from peft import PeftModel, get_peft_model

    base = transformers.BertForSequenceClassification.from_pretrained(base_path, num_labels=num_labels)
    model = PeftModel.from_pretrained(base, adapter_dir) if config is None else get_peft_model(base, config)
    return model.eval()


def torch_logits(model, sequences):
    """(N, K) logits of a PyTorch classifier, one unpadded sequence at a time."""
    import torch

    with torch.no_grad():
        return np.stack([model(input_ids=torch.tensor([ids])).logits[0].numpy() for ids in sequences])


def written_by_peft(adapter_dir, base_path, num_labels, out, seed):
    """PEFT's own adapter directory of adapter_dir's method and settings, every trained tensor random."""
    import torch
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(adapter_dir)
    config.inference_mode = False  # else PEFT freezes the adapter and there is nothing to redraw
    model = peft_model(base_path, config=config, num_labels=num_labels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # the adapter and the head (modules_to_save)
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    model.save_pretrained(out)
    shutil.copy(os.path.join(adapter_dir, "config.json"), out)  # the task model's labels, which minillm reads
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--adapter", required=True, help="an adapter directory finetune.py --peft wrote (BERT)")
    p.add_argument("--examples", type=int, default=64, help="SST-2 dev sentences compared")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="of the tensors redrawn for the write check")
    args = p.parse_args(argv)
    if any(importlib.util.find_spec(name) is None for name in ("torch", "transformers", "peft")):
        raise SystemExit("error: this check needs PyTorch, transformers and peft (`pip install torch transformers "
                         "peft`, in an environment of its own); minillm itself never does")
    base_path = checkpoint_dir(resolve_init(
        read_json(os.path.join(args.adapter, "adapter_config.json"))["base_model_name_or_path"]))
    texts = [t for t, _ in sst2("dev")[:args.examples]]
    sequences = encode_all(load_tokenizer(base_path), texts, args.max_length)
    ours = minillm_logits(args.adapter, sequences)
    theirs = torch_logits(peft_model(base_path, args.adapter, num_labels=ours.shape[1]), sequences)
    print(f"read:  PEFT loading minillm's adapter, max |logit difference| {np.abs(ours - theirs).max():.2e} "
          f"over {len(texts)} sentences (logits up to {np.abs(ours).max():.2f})")
    with tempfile.TemporaryDirectory() as out:
        model = written_by_peft(args.adapter, base_path, ours.shape[1], out, args.seed)
        theirs, ours = torch_logits(model, sequences), minillm_logits(out, sequences)
    print(f"write: minillm loading PEFT's adapter, max |logit difference| {np.abs(ours - theirs).max():.2e} "
          f"(logits up to {np.abs(ours).max():.2f})")


if __name__ == "__main__":
    run_main(main)
