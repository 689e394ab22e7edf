"""Pretrain a language model: `python train.py --help` (the code is in minillm/pretrain.py)."""

from minillm.pretrain import main

if __name__ == "__main__":
    main()
