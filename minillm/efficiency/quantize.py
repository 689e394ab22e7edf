"""Post-training quantization of a saved model, into a checkpoint directory every command loads.

    model = load_model(source)                  # float32, as fine-tuned or pretrained
    quantize_model(model, scheme)               # nn/quantized.py: Linear, Conv1D, Embedding -> int8 / int4
    save_quantized(model, scheme, out)          # config.json + quantization_config, model.safetensors

The directory keeps Hugging Face's layout and names: `<layer>.weight` holds
the int8 weight (int4: two a byte, uint8), `<layer>.weight_scale` its float32
scales, and config.json's `quantization_config` records the scheme, which is
how models/auto.load_model (used by `finetune.py --predict`, `sample.py` and
the compression benchmark) knows to build the quantized layers before reading
the tensors. Layers left in float (keep_float) are stored as before;
layer_sensitivity measures which layers lose the most when quantized alone.
"""

import os

from minillm.checkpoint import read_json, save_model_directory
from minillm.models.auto import load_model
from minillm.nn.quantized import quantizable_layers, quantize_model, quantized_layer
from minillm.tokenizers import load_tokenizer


def save_quantized(model, scheme, directory, extra_files=None):
    """A quantized model's directory, atomically: its config with `quantization_config`, its tensors."""
    config = {**model.config_dict(), "quantization_config": scheme.to_dict()}
    save_model_directory(directory, config, model.checkpoint_state(), extra_files)


def quantize_checkpoint(source, directory, scheme):
    """Quantize the model in `source` (a float checkpoint with its tokenizer) into `directory`; returns the model."""
    config_path = os.path.join(source, "config.json")
    if "quantization_config" in read_json(config_path):
        raise ValueError(f"{config_path}: this model is quantized already; quantize its float original")
    model = quantize_model(load_model(source), scheme)
    save_quantized(model, scheme, directory, load_tokenizer(source).save)
    return model


def layer_sensitivity(model, scheme, error):
    """{layer name: error(model with only that layer quantized)}, for each layer the scheme quantizes.

    error(model) -> float compares the model's outputs with the float model's (e.g. the mean KL of its
    predictions); the layers with the largest are the ones to leave in float (scheme.keep_float).
    Each layer is swapped for its quantized form and back, so `model` ends as it began.
    """
    found = {}
    for parent, name, full, layer in list(quantizable_layers(model, scheme)):
        setattr(parent, name, quantized_layer(layer, scheme))
        try:
            found[full] = error(model)
        finally:
            setattr(parent, name, layer)
    return found
