"""Architectures built from nn/ modules, with Hugging Face names and layouts; models never train themselves."""
