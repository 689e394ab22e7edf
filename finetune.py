"""Fine-tune a pretrained model: `python finetune.py --help` (the code is in minillm/cli/finetune.py)."""

from minillm.cli.errors import run_main
from minillm.cli.finetune import main

if __name__ == "__main__":
    run_main(main)
