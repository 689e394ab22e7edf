"""Making a trained model cheaper to run: quantization (quantize.py), and the students of distillation (distill.py)."""
