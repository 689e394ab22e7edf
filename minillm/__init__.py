"""minillm: language models pretrained and fine-tuned from scratch on NumPy/CuPy (see docs/ARCHITECTURE.md)."""
