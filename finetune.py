"""Fine-tune a pretrained model: `python finetune.py --help` (the code is in minillm/finetune.py)."""

from minillm.finetune import main

if __name__ == "__main__":
    main()
