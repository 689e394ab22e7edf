"""Layered settings for train.py and finetune.py: a model's defaults file, a resumed run, --config, then flags.

Each layer overrides the one before it:

    configs/<name>.json  <  the resumed run's settings  <  --config FILE  <  flags on the command line

A settings file is a JSON object of flag names with underscores
({"n_layer": 4, "learning_rate": 1e-3}). Besides the flags, a file may set
any TrainConfig field (beta2, schedule, ...): the flags expose what a user
usually tunes, the files reach every setting. An unknown key is an error that
names the file and the key.
"""

import argparse
import dataclasses
import json
import os

from minillm.training.trainer import TrainConfig

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def config_path(name):
    """configs/<name>.json of the checkout."""
    return os.path.join(CONFIG_DIR, name + ".json")


def read_settings(path):
    """A settings file as a dict; a missing file or anything but a JSON object is an error naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"error: {path}: settings file not found") from None
    except ValueError as err:
        raise SystemExit(f"error: {path}: not valid JSON ({err})") from None
    if not isinstance(settings, dict):
        raise SystemExit(f"error: {path}: expected a JSON object of settings, got {type(settings).__name__}")
    return settings


def positive(kind):
    """An argparse type: int or float (`kind`) that must be above 0 (a count, a size, a learning rate)."""
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid int value" for text that is no number
    return parse


def add_precision_argument(group):
    """--precision: the trainer's mixed precision (training/loss_scale.py, nn.functional.matmul)."""
    group.add_argument("--precision", choices=["float32", "float16"], default="float32",
                       help="float16: matrix products with float16 operands (the GPU's tensor cores), float32 "
                            "master weights and dynamic loss scaling that skips a step whose gradients overflow "
                            "(on the CPU: float16-rounded operands multiplied in float32, for checking the numerics)")


def add_bucket_argument(group):
    """--bucket-mb: data parallelism's gradient buckets (training/buckets.py)."""

    def size(text):
        value = float(text)
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
        return value

    size.__name__ = "float"
    group.add_argument("--bucket-mb", type=size, default=TrainConfig.bucket_mb,
                       help="under mpirun: sum the gradients over the ranks in buckets of about this many MB, each "
                            "started as soon as backward has finished it (0: one Allreduce after backward)")


def add_train_config_defaults(parser):
    """Give the namespace every TrainConfig field that has no flag, at its dataclass default."""
    flags = {action.dest for action in parser._actions}
    parser.set_defaults(**{f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in flags})


def parse_layered(parser, argv, defaults, layers=()):
    """Parse argv over `defaults` and then `layers`, each a (source, settings dict), the later ones winning.

    Keys that are no setting of this parser raise an error naming their source.
    The defaults file may set out_dir (where the model's runs go by default);
    in the other layers `resume`, `config` and `out_dir` are ignored: a resumed
    run or a shared settings file says how a run goes, not where it lives.
    """
    known = {action.dest for action in parser._actions} | set(parser._defaults)
    for k, (source, settings) in enumerate([defaults, *layers]):
        unknown = sorted(set(settings) - known)
        if unknown:
            parser.error(f"{source}: unknown settings {unknown}")
        kept = {n: v for n, v in settings.items() if k == 0 or n not in ("resume", "config", "out_dir")}
        parser.set_defaults(**kept)
    return parser.parse_args(argv)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help with the description as written and each flag's default after its help (none for a flag whose
    default is None or False: it has no value unless given, or its defaults file gives it one)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def train_config(args, **overrides):
    """The TrainConfig of parsed settings (every field of it that args holds)."""
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(**{**fields, **overrides})
