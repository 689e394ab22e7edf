"""Prompt tuning (Lester et al., 2021): n trained virtual token embeddings before every input.

    x = [P; W_word[ids]]   P (n, C) trained, the word table frozen
    mask = [1 ... 1; attention_mask],  token types [0 ... 0; token_type_ids]

The backbone runs on n + T positions (positions 0 .. n + T - 1, as Hugging
Face PEFT feeds them); the task head sees what it would without the prompt:
the sequence output drops the n virtual positions (token classification,
question answering), a GPT-2 classifier reads the last real token. BERT's
pooler reads position 0, which is now the first virtual token: PEFT does the
same, so its PeftModel reproduces these logits. The gradient reaching the
inputs is summed over the batch for P; the word table, frozen, gets none.
P starts as n rows of the word table drawn at random (Lester et al.'s
sampled-vocabulary start, PEFT's SAMPLE_VOCAB).

Saved as PEFT's PROMPT_TUNING: adapter_config.json and a safetensors file
with `prompt_embeddings` (n, C) and the head under `base_model.`.
`BackboneWrapper` is what peft/prefix.py builds on too.
"""

from minillm.backend import xp
from minillm.models.bert import BertModel
from minillm.nn.layers import Module, Parameter
from minillm.peft.model import (PROMPT_PREFIX, active_settings, backbone_name, begin_adapter, check_peft_type,
                                end_adapter, fill_adapter, head_names, head_state, read_adapter_files,
                                save_adapter_files, set_module, task_type)


class BackboneWrapper(Module):
    """A backbone (`base_layer`) with one trained tensor per named adapter; the active one's is `prompt_embeddings`.

    The backbone's submodules become this module's own too, so every
    parameter keeps its name (`bert.encoder.layer.0...`); the trained tensor
    is `prompt_embeddings`. Subclasses write forward and backward.
    """

    def __init__(self, backbone):
        for name, child in backbone.children():
            setattr(self, name, child)
        self.base_layer = backbone
        self.is_bert = isinstance(backbone, BertModel)
        self.adapters = {}  # name -> Parameter
        self.active = self.prompt_embeddings = None
        self.train(backbone.training)

    def add_adapter(self, name, data):
        self.adapters[name] = Parameter(data)
        self.set_adapter(name)

    def set_adapter(self, name):
        self.active, self.prompt_embeddings = name, self.adapters[name]

    def word_table(self):
        return (self.base_layer.embeddings.word_embeddings if self.is_bert else self.base_layer.wte).weight.data

    def ones_before(self, mask, n, value=1):
        """(B, n) of `value` before a (B, T) mask or token types; None stays None."""
        if mask is None:
            return None
        mask = xp.asarray(mask)
        return xp.concatenate([xp.full((mask.shape[0], n), value, dtype=mask.dtype), mask], axis=1)


class PromptTuning(BackboneWrapper):
    """The backbone run on [P; words]: BERT's call (ids, token types, mask) -> (sequence, pooled), GPT-2's
    (ids, attention_mask=) -> hidden states, each without the virtual positions."""

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        p = self.prompt_embeddings.data  # (n, C)
        n = p.shape[0]
        words = self.word_table()[xp.asarray(input_ids)]  # (B, T, C), a lookup in the frozen table
        x = xp.concatenate([xp.broadcast_to(p, (words.shape[0], *p.shape)), words], axis=1)  # (B, n + T, C)
        mask = self.ones_before(attention_mask, n)
        if not self.is_bert:
            return self.base_layer(None, attention_mask=mask, inputs_embeds=x)[:, n:]
        seq, pooled = self.base_layer(None, self.ones_before(token_type_ids, n, 0), mask, inputs_embeds=x)
        return seq[:, n:], pooled

    def backward(self, dseq, dpooled=None):
        """d(sequence) gets zeros at the virtual positions; dP = the inputs' gradient there, summed over the batch."""
        n = self.prompt_embeddings.shape[0]
        dfull = xp.zeros((dseq.shape[0], n + dseq.shape[1], dseq.shape[2]), dtype=dseq.dtype)
        dfull[:, n:] = dseq
        dx = self.base_layer.backward(dfull, dpooled) if self.is_bert else self.base_layer.backward(dfull)
        self.prompt_embeddings.accumulate(dx[:, :n].sum(axis=0))  # (n, C)


def wrap_backbone(model, wrapper_class):
    """The model's backbone inside a wrapper_class (made once; a second adapter reuses it)."""
    name = backbone_name(model)
    backbone = getattr(model, name)
    if not isinstance(backbone, wrapper_class):
        backbone = wrapper_class(backbone)
        set_module(model, name, backbone)
    return backbone


def add_prompt_tuning(model, num_virtual_tokens=20, name="default", seed=0):
    """Freeze the backbone and add prompt `name` (made active): num_virtual_tokens rows of the word table."""
    begin_adapter(model, name, "prompt")
    wrapper = wrap_backbone(model, PromptTuning)
    table = wrapper.word_table()
    rows = xp.random.default_rng(seed).integers(0, table.shape[0], num_virtual_tokens)
    wrapper.add_adapter(name, table[rows].copy())
    end_adapter(model, name, "prompt", num_virtual_tokens=num_virtual_tokens)
    return model


def prompt_learning_config(model, peft_type, base_model_name_or_path=None):
    """The keys PEFT's PromptLearningConfig reads: the virtual tokens and the backbone's sizes."""
    cfg = model.config
    bert = backbone_name(model) == "bert"
    return {"peft_type": peft_type, "task_type": task_type(model), "base_model_name_or_path": base_model_name_or_path,
            "revision": None, "inference_mode": True,
            "num_virtual_tokens": active_settings(model)["num_virtual_tokens"],
            "token_dim": cfg.hidden_size if bert else cfg.n_embd, "num_transformer_submodules": 1,
            "num_attention_heads": cfg.num_attention_heads if bert else cfg.n_head,
            "num_layers": cfg.num_hidden_layers if bert else cfg.n_layer, "modules_to_save": head_names(model)}


def save_prompt_learning(model, directory, config):
    wrapper = getattr(model, backbone_name(model))
    tensors = {"prompt_embeddings": wrapper.prompt_embeddings.data, **head_state(model)}
    save_adapter_files(directory, model, config, tensors, PROMPT_PREFIX, bare=("prompt_embeddings",))


def load_prompt_learning(model, directory, peft_type, add, name):
    """Add the adapter a PEFT prompt-learning directory holds, with add(model, config, name), and fill it."""
    config, tensors = read_adapter_files(directory, PROMPT_PREFIX, bare=("prompt_embeddings",))
    check_peft_type(directory, config, peft_type)
    add(model, config, name)
    params = {"prompt_embeddings": getattr(model, backbone_name(model)).prompt_embeddings}
    return fill_adapter(model, name, f"{directory}/adapter_model.safetensors", tensors, params, PROMPT_PREFIX,
                        bare=("prompt_embeddings",))


def save_prompt(model, directory, base_model_name_or_path=None):
    config = {**prompt_learning_config(model, "PROMPT_TUNING", base_model_name_or_path),
              "prompt_tuning_init": "SAMPLE_VOCAB", "prompt_tuning_init_text": None,
              "tokenizer_name_or_path": None, "tokenizer_kwargs": None}
    save_prompt_learning(model, directory, config)


def add_prompt_from_config(model, config, name="default"):
    return add_prompt_tuning(model, config["num_virtual_tokens"], name)


def load_prompt(model, directory, name="default"):
    return load_prompt_learning(model, directory, "PROMPT_TUNING", add_prompt_from_config, name)
