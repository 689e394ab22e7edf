"""Making a trained model cheaper to run: quantization (quantize.py), pruning (prune.py), students (distill.py)."""
