"""The command lines behind train.py, finetune.py and sample.py: argument parsing and wiring only."""
