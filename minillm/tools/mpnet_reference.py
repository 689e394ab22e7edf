"""minillm's MPNet against transformers' MPNetModel: `python -m minillm.tools.mpnet_reference`.

On the first --examples SST-2 dev sentences, padded into one batch by each side's own tokenizer
(transformers' MPNetTokenizerFast and minillm's WordPiece must give the same ids), it prints the
largest differences of

    the last hidden states (real tokens), the pooler output, and the mean-pooled unit embeddings
    (sentence-transformers' all-mpnet-base-v2 recipe);
    the buckets of every offset j - i in [-600, 600] against transformers' relative_position_bucket;
    the gradient of the sum of the mean-pooled outputs with respect to the relative bias table
    (shared by every layer) and layer 0's query weight: minillm's hand-written backward against autograd.

torch and transformers are imported only here, in an environment of their own (`pip install torch
transformers`): neither is ever a requirement of minillm.
"""

import argparse
import importlib.util

from minillm.backend import np, to_host
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter, positive
from minillm.data.labelled import sst2
from minillm.models.mpnet import MPNetModel
from minillm.models.pretrained import resolve_init
from minillm.nn.functional import masked_mean_backward, masked_mean_forward
from minillm.nn.relative_position import relative_position_bucket
from minillm.tasks.sentence_embeddings import unit_rows
from minillm.tokenizers import load_tokenizer

GRADIENTS = (("encoder.relative_attention_bias.weight", lambda hf: hf.encoder.relative_attention_bias.weight),
             ("encoder.layer.0.attention.self.query.weight", lambda hf: hf.encoder.layer[0].attention.attn.q.weight))


def largest(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def compare(directory, texts):
    """Prints each comparison of the module docstring, one line each."""
    import torch
    from transformers import AutoTokenizer
    from transformers import MPNetModel as TorchMPNet

    batch = AutoTokenizer.from_pretrained(directory)(texts, padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"].numpy(), batch["attention_mask"].numpy()
    ours_ids = [load_tokenizer(directory).encode_plus(t).input_ids for t in texts]
    same = all(ids[i][mask[i] == 1].tolist() == ours_ids[i] for i in range(len(texts)))
    print(f"token ids: {'identical' if same else 'DIFFERENT'} for {len(texts)} sentences")
    theirs = TorchMPNet.from_pretrained(directory).eval()
    ours = MPNetModel.from_pretrained(directory).eval()
    out = theirs(**batch)
    seq, pooled = ours(ids, attention_mask=mask)
    real = mask.astype(bool)
    hidden = largest(out.last_hidden_state.detach()[real], to_host(seq)[real])
    print(f"last hidden state, real tokens: max |difference| {hidden:.2e}")
    print(f"pooler output: max |difference| {largest(out.pooler_output.detach(), to_host(pooled)):.2e}")
    m = batch["attention_mask"][..., None].to(out.last_hidden_state.dtype)
    torch_mean = (out.last_hidden_state * m).sum(1) / m.sum(1)
    mean, weights = masked_mean_forward(seq, mask)
    unit = torch.nn.functional.normalize(torch_mean, dim=-1).detach()
    print(f"mean-pooled unit embeddings: max |difference| {largest(unit, unit_rows(to_host(mean))):.2e}")
    offsets = torch.arange(-600, 601)
    buckets = theirs.encoder.relative_position_bucket(offsets, num_buckets=32, max_distance=128).numpy()
    same_buckets = (relative_position_bucket(offsets.numpy()) == buckets).all()
    print(f"buckets of j - i in [-600, 600]: {'identical' if same_buckets else 'DIFFERENT'}")
    torch_mean.sum().backward()
    ours.zero_grad()
    ours.backward(masked_mean_backward(np.ones_like(to_host(mean)), weights))
    grads = dict(ours.named_parameters())
    for name, tensor in GRADIENTS:
        g, t = to_host(grads[name].grad), tensor(theirs).grad.numpy()
        print(f"d sum(mean-pooled) / d {name}: max |difference| {largest(g, t):.2e} (largest entry "
              f"{np.abs(t).max():.2e}, relative norm {np.linalg.norm(g - t) / np.linalg.norm(t):.2e})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--init", default="mpnet", help="'mpnet' (all-mpnet-base-v2) or a Hugging Face MPNet directory")
    p.add_argument("--examples", type=positive(int), default=16, help="SST-2 dev sentences compared")
    args = p.parse_args(argv)
    if any(importlib.util.find_spec(name) is None for name in ("torch", "transformers")):
        raise SystemExit("error: this check needs PyTorch and transformers (`pip install torch transformers`, in an "
                         "environment of its own); minillm itself never does")
    compare(resolve_init(args.init), [t for t, _ in sst2("dev")[:args.examples]])


if __name__ == "__main__":
    run_main(main)
