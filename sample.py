"""Sample from a GPT checkpoint: `python sample.py --help` (the code is in minillm/cli/sample.py)."""

from minillm.cli.sample import main

if __name__ == "__main__":
    main()
