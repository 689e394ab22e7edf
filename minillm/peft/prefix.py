"""Prefix tuning (Li & Liang, 2021; P-tuning v2): trained keys and values before every layer's own.

    layer l:  K = [P_K^l; h W_K],  V = [P_V^l; h W_V],  mask = [1 ... 1; attention_mask]

Each layer's queries attend to n trained key/value pairs as well as to the
tokens; nothing else changes, so the output has the input's length. The
prefixes enter as the backbone's past_key_values (what generation's KV cache
uses), so positions start at n, as in Hugging Face; the attention layers
leave the prefixes' gradients in `dpast`, summed here over the batch.

One tensor holds them all, PEFT's PREFIX_TUNING layout without projection:
`prompt_embeddings` (n, L * 2 * C), each row the n-th virtual token's
[layer 0 key, layer 0 value, layer 1 key, ...], each C = H x D split into
heads. It starts as the keys and values the frozen model computes for n
random tokens of its vocabulary (Li & Liang's start from real words).
"""

from minillm.backend import xp
from minillm.peft.model import begin_adapter, end_adapter
from minillm.peft.prompt import (BackboneWrapper, load_prompt_learning, prompt_learning_config, save_prompt_learning,
                                 wrap_backbone)


class PrefixTuning(BackboneWrapper):
    """The backbone with every layer's prefix: BERT's call (ids, token types, mask) -> (sequence, pooled),
    GPT-2's (ids, attention_mask=) -> hidden states."""

    def attentions(self):
        """Each layer's attention module, which keeps the prefix's gradients (dpast) after backward."""
        if self.is_bert:
            return [layer.attention.self for layer in self.base_layer.encoder.layer]
        return [block.attn for block in self.base_layer.h]

    def prefixes(self, batch):
        """[(key, value)] for each layer, each (B, H, n, D): views of prompt_embeddings (n, L * 2 * C)."""
        layers = self.attentions()
        n, H = self.prompt_embeddings.shape[0], layers[0].n_head
        p = self.prompt_embeddings.data.reshape(n, len(layers), 2, H, -1)  # (n, L, key|value, H, D)
        p = p.transpose(1, 2, 3, 0, 4)  # (L, 2, H, n, D)
        return [tuple(xp.broadcast_to(p[i, kv], (batch, *p.shape[2:])) for kv in (0, 1)) for i in range(len(layers))]

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        input_ids = xp.asarray(input_ids)
        n = self.prompt_embeddings.shape[0]
        past, mask = self.prefixes(input_ids.shape[0]), self.ones_before(attention_mask, n)
        if self.is_bert:
            return self.base_layer(input_ids, token_type_ids, mask, past_key_values=past)
        return self.base_layer(input_ids, attention_mask=mask, past_key_values=past)

    def backward(self, dseq, dpooled=None):
        """The backbone's backward, then each layer's prefix gradients, summed over the batch, into one array."""
        if self.is_bert:
            self.base_layer.backward(dseq, dpooled)
        else:
            self.base_layer.backward(dseq)
        n = self.prompt_embeddings.shape[0]
        grads = [xp.stack([d.sum(axis=0) for d in a.dpast]) for a in self.attentions()]  # L x (2, H, n, D)
        g = xp.stack(grads).transpose(3, 0, 1, 2, 4)  # (n, L, 2, H, D)
        self.prompt_embeddings.accumulate(g.reshape(n, -1))


def initial_prefixes(wrapper, n, seed):
    """(n, L * 2 * C): the keys and values the frozen backbone computes for n random tokens of its vocabulary."""
    ids = xp.random.default_rng(seed).integers(0, wrapper.word_table().shape[0], (1, n))
    was_training = wrapper.training
    wrapper.eval()
    wrapper.base_layer(ids)
    wrapper.train(was_training)
    caches = [a.cache if wrapper.is_bert else a.attn_cache for a in wrapper.attentions()]  # attention_forward's
    kv = xp.stack([xp.stack([c[1][0], c[2][0]]) for c in caches])  # (L, key|value, H, n, D)
    return kv.transpose(3, 0, 1, 2, 4).reshape(n, -1).copy()


def add_prefix_tuning(model, num_virtual_tokens=20, name="default", seed=0):
    """Freeze the backbone and add prefix `name` (made active) of num_virtual_tokens keys and values a layer."""
    begin_adapter(model, name, "prefix")
    wrapper = wrap_backbone(model, PrefixTuning)
    wrapper.add_adapter(name, initial_prefixes(wrapper, num_virtual_tokens, seed))
    end_adapter(model, name, "prefix", num_virtual_tokens=num_virtual_tokens)
    return model


def save_prefix(model, directory, base_model_name_or_path=None):
    config = prompt_learning_config(model, "PREFIX_TUNING", base_model_name_or_path)
    save_prompt_learning(model, directory, {**config, "encoder_hidden_size": config["token_dim"],
                                            "prefix_projection": False})


def add_prefix_from_config(model, config, name="default"):
    if config.get("prefix_projection"):
        raise ValueError("prefix_projection: only prefixes without a projection (PEFT's default) are implemented")
    return add_prefix_tuning(model, config["num_virtual_tokens"], name)


def load_prefix(model, directory, name="default"):
    return load_prompt_learning(model, directory, "PREFIX_TUNING", add_prefix_from_config, name)
