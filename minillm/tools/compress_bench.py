"""What compression costs and buys: `python -m minillm.tools.compress_bench --classifier DIR --gpt RUN_DIR`.

For a fine-tuned sequence classifier (SST-2 dev accuracy) and a GPT run of
train.py (held-out loss in nats per token, as train.py's final score), each
setting is written as a checkpoint directory under --out-dir (quantized ones
by efficiency/quantize.py), loaded back through models/auto.load_model as
every command loads it, and measured:

    parameters       of the float model (quantization keeps the count, not the bytes)
    disk MB          model.safetensors
    weights MB       the arrays the loaded model holds
    peak MB          those, plus the peak of the arrays allocated while it predicts one batch of
                     --batch-size (tracemalloc: activations, which every layer keeps for a backward, and
                     weights dequantized on the fly)
    per CPU second   sentences (classifier) or tokens (GPT) per second of this process's CPU time, the
                     best of --rounds rounds that time the settings in turn on the same inputs: on a machine
                     other jobs share, CPU time is what each setting's work costs, where the wall clock
                     also counts the waits for a core (the wall-clock rate is in the JSON lines). Run with
                     OPENBLAS_NUM_THREADS=1 so one core does all the work.
    score            accuracy on SST-2 dev (all 872, or --max-eval-examples), or the held-out loss

--settings names the ones measured (float32 always comes first); --head-fractions and --sparsities add
pruned classifiers, --students other (distilled) classifiers; --sensitivity N first scores each layer
quantized alone (the float fallback's candidates); --matmul N K M times the int8 product NumPy has
against the one nn/quantized.py uses.
One JSON line a setting goes to <out-dir>/compression.jsonl and a markdown table to
<out-dir>/compression.md.
"""

import argparse
import copy
import json
import os
import time
import tracemalloc
from typing import Callable, NamedTuple

from minillm import backend
from minillm.backend import np, xp
from minillm.checkpoint import read_json
from minillm.cli.compress import classification_loss_and_backward, importance_batches
from minillm.cli.errors import run_main
from minillm.cli.settings import HelpFormatter
from minillm.data.labelled import sst2
from minillm.data.lm_data import lm_streams
from minillm.efficiency.prune import head_importance, least_important_heads, magnitude_prune, prune_heads
from minillm.efficiency.quantize import layer_sensitivity, quantize_checkpoint
from minillm.models.auto import load_model
from minillm.nn.quantized import QuantizationScheme, int_matmul
from minillm.tasks.batching import predict_probabilities
from minillm.tasks.causal_lm import CausalLMTask
from minillm.tasks.classification import encode_all
from minillm.tokenizers import load_tokenizer
from minillm.training.trainer import read_trainer_state, resume_directory

SETTINGS = {"int8": QuantizationScheme("int8", "int8"), "int8-weights": QuantizationScheme("int8"),
            "int4-g64": QuantizationScheme("int4", group_size=64),
            "int8-float-emb": QuantizationScheme("int8", "int8", embeddings=False)}
DESCRIPTIONS = {"float32": "float32", "int8": "int8 weights + int8 activations, embeddings int8",
                "int8-weights": "int8 weights only, embeddings int8",
                "int4-g64": "int4 weights in groups of 64, embeddings int4 (weights only)",
                "int8-float-emb": "int8 weights + activations, embeddings float32 (as PyTorch's quantize_dynamic)"}


def matmul_speeds(n, k, m, rounds):
    """CPU ms of one (n, k) x (k, m) product: float32 BLAS, NumPy's own int8 and int32 matmul, int_matmul."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(-127, 128, (n, k)).astype(np.int8), rng.integers(-127, 128, (k, m)).astype(np.int8)
    products = {"float32 BLAS": (a.astype(np.float32), b.astype(np.float32), np.matmul),
                "NumPy int8 matmul": (a, b, np.matmul),
                "NumPy int32 matmul": (a.astype(np.int32), b.astype(np.int32), np.matmul),
                "int_matmul (float32 chunks, exact)": (xp.asarray(a), xp.asarray(b), int_matmul)}
    best = {}
    for _ in range(rounds):
        for name, (x, y, product) in products.items():
            start = time.process_time()
            product(x, y)
            backend.synchronize()
            best[name] = min(best.get(name, float("inf")), (time.process_time() - start) * 1e3)
    return best


class Bench(NamedTuple):
    """What measure() runs on each model: timed(model) the timed work, score(model) the score,
    one_batch(model) the work whose peak memory is counted; `count` `unit` (sentences, tokens) a timed call runs."""
    timed: Callable
    score: Callable
    one_batch: Callable
    unit: str
    count: int


def held_bytes(model):
    return sum(int(a.nbytes) for a in model.state_dict().values())


def classifier_bench(directory, args):
    """The Bench of a classifier: sentences of SST-2 dev, scored by accuracy."""
    tokenizer = load_tokenizer(directory)
    dev = sst2("dev", args.data_dir)[:args.max_eval_examples or None]
    config = read_json(os.path.join(directory, "config.json"))
    encoded = encode_all(tokenizer, [t for t, _ in dev], min(128, config["max_position_embeddings"]))
    gold = [y for _, y in dev]
    pad = config.get("pad_token_id") or 0

    def predict(model, sequences):
        return predict_probabilities(model, sequences, args.batch_size, pad)

    def score(model):
        return float((predict(model, encoded).argmax(axis=1) == gold).mean())

    return Bench(lambda model: predict(model, encoded[:args.timed]), score,
                 lambda model: predict(model, encoded[:args.batch_size]), "sentences", len(encoded[:args.timed]))


def gpt_bench(run_dir, args):
    """The same for a GPT: held-out loss over --max-val-tokens, tokens/s over the first --timed windows."""
    run = read_trainer_state(resume_directory(run_dir))["run_config"]
    _, _, val_ids = lm_streams(run["tokenizer"], run["data"], run["vocab_size"], args.data_dir, progress=False)
    block, batch = run["block_size"], run["batch_size"]

    def loss(model, tokens):  # the mean over consecutive windows, as train.py's final score
        return CausalLMTask(model, val_ids[:2], val_ids[:tokens + 1], batch, block).full_val_loss(tokens)

    return Bench(lambda model: loss(model, args.timed * block), lambda model: loss(model, args.max_val_tokens),
                 lambda model: loss(model, batch * block), "tokens", args.timed * block)


def pruned_models(directory, args):
    """Head-pruned (--head-fractions, importance scored once on the unpruned model) and magnitude-pruned
    (--sparsities, global) copies of a classifier, saved under --out-dir: {setting: description}."""
    made = {}
    if not (args.head_fractions or args.sparsities):
        return made
    model, save = load_model(directory), load_tokenizer(directory).save
    if args.head_fractions:
        scores = head_importance(model, importance_batches(model, directory, args), classification_loss_and_backward)
        total = int((~np.isnan(scores)).sum())
        for fraction in args.head_fractions:
            heads = least_important_heads(scores, int(round(fraction * total)))
            removed = sum(map(len, heads.values()))
            setting = f"heads-{removed}"
            pruned = prune_heads(copy.deepcopy(model), heads)
            pruned.save_pretrained(os.path.join(args.out_dir, f"classifier-{setting}"), extra_files=save)
            made[setting] = f"{removed} of {total} heads removed ({removed / total:.0%}), no fine-tuning after"
    for sparsity in args.sparsities:
        setting = f"sparse-{sparsity:g}"
        pruned = copy.deepcopy(model)
        magnitude_prune(pruned, sparsity, "global")
        pruned.save_pretrained(os.path.join(args.out_dir, f"classifier-{setting}"), extra_files=save)
        made[setting] = f"{sparsity:.0%} of the Linear weights zero (global magnitude), no fine-tuning after"
    return made


def sensitivity(directory, args):
    """{layer: mean KL(float || only that layer int8 w+a)} of the classifier's predictions on the first
    --sensitivity dev sentences, largest first."""
    model = load_model(directory)
    dev = sst2("dev", args.data_dir)[:args.sensitivity]
    encoded = encode_all(load_tokenizer(directory), [t for t, _ in dev], 128)
    pad = model.config.pad_token_id or 0
    exact = predict_probabilities(model, encoded, args.batch_size, pad)

    def kl(m):
        approx = predict_probabilities(m, encoded, args.batch_size, pad)
        return float((exact * (np.log(exact + 1e-12) - np.log(approx + 1e-12))).sum(axis=1).mean())

    found = layer_sensitivity(model, SETTINGS["int8"], kl)
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def measure(kind, source, args):
    """Rows of the table for one model: float32, each quantized and pruned setting, and the --students."""
    name = os.path.basename(os.path.normpath(source)) if kind == "classifier" else "gpt"
    directory = source if kind == "classifier" else resume_directory(source)
    dirs, descriptions = {"float32": directory}, dict(DESCRIPTIONS)
    for setting in args.settings:
        dirs[setting] = os.path.join(args.out_dir, f"{kind}-{setting}")
        quantize_checkpoint(directory, dirs[setting], SETTINGS[setting])
    if kind == "classifier":
        for setting, description in pruned_models(directory, args).items():
            dirs[setting], descriptions[setting] = os.path.join(args.out_dir, f"{kind}-{setting}"), description
    bench = classifier_bench(directory, args) if kind == "classifier" else gpt_bench(source, args)
    benches = {s: bench for s in dirs}
    for student in (args.students if kind == "classifier" else []):  # each reads dev through its own tokenizer
        s = f"student {student}"
        dirs[s], benches[s] = student, classifier_bench(student, args)
    unit, count = bench.unit, bench.count
    models = {s: load_model(d) for s, d in dirs.items()}
    for s in benches.keys() - descriptions.keys():
        cfg = models[s].config
        descriptions[s] = (f"{s} (layers {cfg.num_hidden_layers}, width {cfg.hidden_size}, "
                           f"{cfg.vocab_size:,} word pieces)")
    parameters = {s: models["float32" if s in SETTINGS else s].num_parameters() for s in dirs}  # quantized: as float
    best, best_cpu = {s: float("inf") for s in dirs}, {s: float("inf") for s in dirs}
    for _ in range(args.rounds):  # in turns: each round times every setting once
        for s, model in models.items():
            start, cpu = time.perf_counter(), time.process_time()
            benches[s].timed(model)
            backend.synchronize()
            best[s] = min(best[s], time.perf_counter() - start)
            best_cpu[s] = min(best_cpu[s], time.process_time() - cpu)
    rows = []
    for s, model in models.items():
        tracemalloc.start()
        benches[s].one_batch(model)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        held = held_bytes(model)
        rows.append({"model": f"{kind} ({name})", "setting": s, "description": descriptions[s],
                     "parameters": parameters[s],
                     "disk_mb": os.path.getsize(os.path.join(dirs[s], "model.safetensors")) / 1e6,
                     "weights_mb": held / 1e6, "peak_mb": (held + peak) / 1e6,
                     f"{unit}_per_cpu_s": count / best_cpu[s], f"{unit}_per_s": count / best[s],
                     "score_name": "dev accuracy" if kind == "classifier" else "held-out loss",
                     "score": benches[s].score(model)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows):
    lines = ["| model | setting | parameters | disk MB | vs float32 | weights MB | peak MB | per CPU s | score |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        base.setdefault(r["model"], r)
        b = base[r["model"]]
        unit = "sentences" if "sentences_per_s" in r else "tokens"
        speed = r[f"{unit}_per_cpu_s"]
        lines.append(f"| {r['model']} | {r['description']} | {r['parameters']:,} | {r['disk_mb']:.1f} | "
                     f"{r['disk_mb'] / b['disk_mb']:.1%} | {r['weights_mb']:.1f} | {r['peak_mb']:.1f} | "
                     f"{speed:.1f} {unit} ({speed / b[f'{unit}_per_cpu_s']:.2f}x) | "
                     f"{r['score_name']} {r['score']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--classifier", help="a fine-tuned SST-2 classifier directory (a run's best/)")
    p.add_argument("--gpt", help="a train.py GPT run directory (its checkpoint/ and trainer_state.json)")
    p.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=["int8", "int8-weights", "int4-g64"])
    p.add_argument("--out-dir", default="out/compression", help="where the quantized checkpoints and tables go")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--timed", type=int, default=256, help="sentences (GPT: windows) timed a round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-eval-examples", type=int, default=0, help="SST-2 dev sentences scored (0: all 872)")
    p.add_argument("--max-val-tokens", type=int, default=1_000_000, help="GPT: held-out tokens scored")
    p.add_argument("--head-fractions", type=float, nargs="*", default=[],
                   help="classifier: also remove these fractions of the attention heads, least important first")
    p.add_argument("--sparsities", type=float, nargs="*", default=[],
                   help="classifier: also zero these fractions of the Linear weights, smallest first")
    p.add_argument("--students", nargs="*", default=[], metavar="DIR",
                   help="classifier: also measure these smaller classifiers of the same task (e.g. distilled "
                        "students' best/), each reading dev through its own tokenizer")
    p.add_argument("--importance-examples", type=int, default=512, help="training texts that score the heads")
    p.add_argument("--importance-skip", type=int, default=4000,
                   help="the heads are scored on training texts after the first this many (those fine-tuned on)")
    p.add_argument("--matmul", type=int, nargs=3, metavar=("N", "K", "M"),
                   help="first time one (N, K) x (K, M) product of int8 values four ways (e.g. 512 384 1536, "
                        "MiniLM's feed-forward on 16 sentences of 32 tokens)")
    p.add_argument("--sensitivity", type=int, default=0,
                   help="classifier: the mean KL of each layer quantized alone (int8 w+a) on the first N dev "
                        "sentences, written to <out-dir>/sensitivity.json (0: skip)")
    p.add_argument("--data-dir", help="dataset directory (default: $MINILLM_DATA, else ./data)")
    p.add_argument("--device", choices=["cpu", "gpu"], default=os.environ.get("MINILLM_DEVICE", "cpu"))
    args = p.parse_args(argv)
    if not (args.classifier or args.gpt or args.matmul):
        p.error("give --classifier DIR, --gpt RUN_DIR, --matmul N K M or several")
    args.task = "sentiment"  # the classifier is scored on SST-2
    backend.use(args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.matmul:
        n, k, m = args.matmul
        speeds = matmul_speeds(n, k, m, args.rounds)
        print(f"({n}, {k}) x ({k}, {m}) products, best of {args.rounds}:\n"
              + "\n".join(f"  {name}: {ms:.1f} ms ({ms / speeds['float32 BLAS']:.1f}x float32)"
                          for name, ms in speeds.items()), flush=True)
    if args.classifier and args.sensitivity:
        found = sensitivity(args.classifier, args)
        with open(os.path.join(args.out_dir, "sensitivity.json"), "w", encoding="utf-8") as f:
            json.dump(found, f, indent=1)
        print("layers quantized alone, mean KL of the predictions, largest first:\n"
              + "\n".join(f"  {name} {value:.2e}" for name, value in list(found.items())[:8]), flush=True)
    rows = []
    for kind, source in (("classifier", args.classifier), ("gpt", args.gpt)):
        if source:
            rows += measure(kind, source, args)
    with open(os.path.join(args.out_dir, "compression.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    with open(os.path.join(args.out_dir, "compression.md"), "w", encoding="utf-8") as f:
        f.write(markdown(rows))
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    run_main(main)
