"""GPT in PyTorch eager, nanoGPT's way, as a reference for minillm's: `python -m minillm.tools.torch_reference`.

`python -m minillm.tools.bench` times this model beside minillm's. This command trains it step
for step beside `python train.py`'s: the same initial weights (copied from
minillm's GPT), the same batches, the same schedule, and PyTorch's own AdamW
and clipping; it prints both training losses as they go and both validation
losses at the end, computed by the same code. If minillm's forward, backward,
optimizer or schedule were off, the two runs would part within a few steps.
PyTorch is never a requirement of minillm: it is imported only here.
"""

import argparse

from minillm.backend import to_device, to_host
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter


def torch_gpt(vocab_size, n_positions, n_embd, n_layer, n_head):
    """GPT-2's architecture in torch.nn, with minillm's (Hugging Face's) module names minus `transformer.`:
    pre-LN blocks, fused QKV, scaled_dot_product_attention, tanh GELU, tied LM head.
    Linear layers store (out, in), the transpose of GPT-2's Conv1D."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)

        def forward(self, x):  # (B, T, C)
            B, T, C = x.shape
            q, k, v = (a.view(B, T, n_head, C // n_head).transpose(1, 2) for a in self.c_attn(x).split(C, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.c_proj = nn.Linear(n_embd, 4 * n_embd), nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(n_embd), Attention(), nn.LayerNorm(n_embd), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(n_positions, n_embd)
            self.h = nn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)

        def forward(self, idx):  # (B, T) -> logits (B, T, V)
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            return self.ln_f(x) @ self.wte.weight.T

    return TorchGPT()


def copy_weights(gpt, model):
    """minillm GPT's parameters into torch_gpt's (Conv1D weights transposed into Linear's)."""
    import torch

    ours = dict(gpt.named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            w = to_host(ours["transformer." + name].data)
            linear = name.endswith(".weight") and w.ndim == 2 and not name.startswith(("wte", "wpe"))
            p.copy_(torch.from_numpy((w.T if linear else w).copy()))


class TorchLogits:
    """A torch model behind minillm's calling convention (arrays in, logits out), for a task's evaluation."""

    def __init__(self, model):
        self.model = model

    def eval(self):
        self.model.eval()

    def __call__(self, idx):
        import torch

        with torch.no_grad():
            return to_device(self.model(torch.from_numpy(to_host(idx))).numpy())


def main(argv=None):
    from minillm.cli.settings import config_path, read_settings
    from minillm.data.lm_data import lm_streams
    from minillm.models.gpt import GPT, GPTConfig
    from minillm.tasks.causal_lm import CausalLMTask
    from minillm.training.optim import AdamW, cosine_lr, weight_decay_groups

    d = read_settings(config_path("gpt"))  # train.py's GPT
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--steps", type=int, default=d["max_iters"], help="training steps of each")
    p.add_argument("--log-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1337, help="train.py's --seed: minillm's weights and the batches")
    p.add_argument("--data-dir")
    p.add_argument("--no-validation", action="store_true", help="stop after the training steps")
    args = p.parse_args(argv)
    try:
        import torch
        from torch.nn import functional as F
    except ImportError:
        raise SystemExit("python -m minillm.tools.torch_reference needs PyTorch (pip install torch); "
                         "minillm itself does not") from None
    tokenizer, train_ids, val_ids = lm_streams("char", "tinyshakespeare", 0, args.data_dir, progress=False)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_positions=d["block_size"], n_embd=d["n_embd"],
                    n_layer=d["n_layer"], n_head=d["n_head"])
    gpt = GPT(cfg, seed=args.seed)
    model = torch_gpt(cfg.vocab_size, cfg.n_positions, cfg.n_embd, cfg.n_layer, cfg.n_head)
    copy_weights(gpt, model)
    task = CausalLMTask(gpt, train_ids, val_ids, d["batch_size"], d["block_size"], d["eval_iters"], args.seed)
    reference = CausalLMTask(TorchLogits(model), train_ids, val_ids, d["batch_size"], d["block_size"],
                             d["eval_iters"], args.seed)
    optimizer = AdamW(gpt, d["learning_rate"], (d["beta1"], d["beta2"]), weight_decay=d["weight_decay"])
    decayed = {name.removeprefix("transformer.") for name in weight_decay_groups(gpt)[0]}
    params = dict(model.named_parameters())
    torch_optimizer = torch.optim.AdamW(
        [{"params": [params[n] for n in params if n in decayed], "weight_decay": d["weight_decay"]},
         {"params": [params[n] for n in params if n not in decayed], "weight_decay": 0.0}],
        lr=d["learning_rate"], betas=(d["beta1"], d["beta2"]))
    print(f"{'step':>5s} {'minillm loss':>13s} {'pytorch loss':>13s} {'minillm norm':>13s} {'pytorch norm':>13s}")
    for it in range(args.steps):
        lr = cosine_lr(it, d["learning_rate"], d["min_lr"], d["warmup_iters"], d["lr_decay_iters"])
        loss = task.train_step(it, 0, 1.0)
        norm = optimizer.step(lr, max_grad_norm=d["grad_clip"])
        optimizer.zero_grad()
        x, y = (torch.from_numpy(to_host(a)) for a in task.batch("train", 0, it, 0))
        for group in torch_optimizer.param_groups:
            group["lr"] = lr
        torch_loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        torch_optimizer.zero_grad(set_to_none=True)
        torch_loss.backward()
        torch_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), d["grad_clip"]))
        torch_optimizer.step()
        if it < 3 or (it + 1) % args.log_every == 0 or it + 1 == args.steps:
            print(f"{it:5d} {loss:13.5f} {torch_loss.item():13.5f} {norm:13.5f} {torch_norm:13.5f}", flush=True)
    if args.no_validation:
        return
    for name, t in (("minillm", task), ("pytorch", reference)):
        metrics = t.evaluate()
        print(f"{name}: val loss {metrics['val_loss']:.4f} ({d['eval_iters']} fixed batches), "
              f"{t.full_val_loss():.4f} over {t.full_val_scope} of the validation text")


if __name__ == "__main__":
    run_main(main)
