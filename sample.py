"""Sample from a GPT checkpoint: `python sample.py --help` (the code is in minillm/cli/sample.py)."""

from minillm.cli.errors import run_main
from minillm.cli.sample import main

if __name__ == "__main__":
    run_main(main)
