"""Pretrain a language model: `python train.py --help` (the code is in minillm/cli/pretrain.py)."""

from minillm.cli.errors import run_main
from minillm.cli.pretrain import main

if __name__ == "__main__":
    run_main(main)
