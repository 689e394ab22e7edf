"""Task heads on top of a pretrained backbone, for fine-tuning.

    sequence classification   logits = W pool(h) (+ b)     pool: a chosen position or the mean (MPNet: RoBERTa's
                                                           two-layer head on <s>)
    token classification      logits_t = W h_t + b         one label per word, read at its first sub-token
    span extraction (QA)      [start_t, end_t] = W h_t + b answer = argmax_{s <= e < s + L} start_s + end_e

Each model class keeps its architecture's Hugging Face names (GPT-2's `score`
has no bias; the token classifiers' `classifier` and BERT's `qa_outputs` do),
so checkpoints load in transformers as the matching *For... class.
"""

from minillm.backend import xp
from minillm.checkpoint import Pretrained
from minillm.models.bert import BertConfig, BertModel, hf_bert_state
from minillm.models.gpt import GPTConfig, GPTTransformer, hf_gpt2_state
from minillm.models.mpnet import MPNetConfig, MPNetModel, hf_mpnet_state, hf_name
from minillm.nn import functional as F
from minillm.nn.layers import Dropout, Linear, Module, RandomSource, gradients_ready


class TaskModel(Pretrained, Module):
    """What every fine-tuned model shares: labels in config.json, Hugging Face save/load, backbones.

    A subclass names its Hugging Face architecture, config class, the function
    mapping a backbone checkpoint's names to ours (`hf_state`), and the prefixes
    of pretraining-head tensors that a backbone checkpoint may carry and the
    task model does not use. Its own checkpoints hold the parameters under their names.
    Its constructor takes (config, label_names, pad_token_id, seed=, dtype=).
    `default_labels`, where set, stands in for a config.json without id2label
    (transformers leaves its default LABEL_0, LABEL_1 out of the files it saves).
    """

    unused_prefixes = ()
    default_labels = None

    @staticmethod
    def hf_state(tensors):
        return tensors

    def init_task_model(self, cfg, label_names, pad_token_id, seed):
        """Set what every task model has; returns the generator its weights are drawn from."""
        self.config, self.label_names, self.pad_token_id = cfg, list(label_names), pad_token_id
        self.dropout_rng = RandomSource(seed)
        return xp.random.default_rng(seed)

    def config_dict(self):
        """The config with the labels, as transformers' class of the same name writes it."""
        return {**super().config_dict(), "num_labels": len(self.label_names), "pad_token_id": self.pad_token_id,
                "id2label": {str(i): n for i, n in enumerate(self.label_names)},
                "label2id": {n: i for i, n in enumerate(self.label_names)}}

    @classmethod
    def from_config_dict(cls, config, source, dtype="float32"):
        if "id2label" in config:
            names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        elif cls.default_labels:
            names = list(cls.default_labels)
        else:
            raise ValueError(f"{source}: no id2label, so not a fine-tuned task model")
        return cls(cls.config_class.from_dict(config, source), names, config.get("pad_token_id") or 0, dtype=dtype)

    def load_backbone(self, tensors):
        """Load a pretrained model's weights into the backbone; returns (fresh names, unused names).

        The head starts fresh; a pretraining checkpoint's own heads are not used
        (as transformers reports "weights not used"). Any other tensor the
        model has no place for, or a shape that differs, is an error.
        """
        state = self.hf_state(tensors)
        unused = sorted(n for n in state if n.startswith(self.unused_prefixes))
        state = {n: a for n, a in state.items() if n not in unused}
        own = dict(self.named_parameters())
        unexpected = sorted(set(state) - set(own))
        if unexpected:
            raise ValueError(f"tensors the {type(self).__name__} has no place for: {unexpected}")
        fresh = sorted(set(own) - set(state))
        self.load_state_dict({**state, **{n: own[n].data for n in fresh}})
        return fresh, unused


class GPTForSequenceClassification(TaskModel):
    """GPT2ForSequenceClassification: the hidden state of each sequence's last real token, then `score`.

    With right padding, the last real token is at attention_mask.sum() - 1; it
    has seen the whole text through the causal mask.
    """

    architecture, config_class = "GPT2ForSequenceClassification", GPTConfig
    hf_state = staticmethod(hf_gpt2_state)

    def __init__(self, cfg, label_names, pad_token_id=0, seed=0, dtype="float32"):
        rng = self.init_task_model(cfg, label_names, pad_token_id, seed)
        self.transformer = GPTTransformer(cfg, rng, self.dropout_rng, dtype)
        self.score = Linear(cfg.n_embd, len(self.label_names), rng, std=cfg.initializer_range, bias=False,
                            dtype=dtype)

    def forward(self, idx, attention_mask, token_type_ids=None):
        """idx, attention_mask: (B, T), right-padded -> logits (B, num_labels)."""
        h = self.transformer(idx, attention_mask=attention_mask)  # (B, T, C)
        last = xp.asarray(attention_mask).sum(axis=1) - 1  # (B,)
        pooled, self.pool_cache = F.gather_positions_forward(h, last)  # (B, C)
        return self.score(pooled)

    def backward(self, dlogits):
        dpooled = self.score.backward(dlogits)
        gradients_ready(self.score)
        self.transformer.backward(F.gather_positions_backward(dpooled, self.pool_cache))


class BertForSequenceClassification(TaskModel):
    """BertForSequenceClassification: logits = classifier(dropout(pooled [CLS]))."""

    architecture, config_class = "BertForSequenceClassification", BertConfig
    hf_state = staticmethod(hf_bert_state)
    unused_prefixes = ("cls.",)  # BertForPreTraining's MLM and NSP heads

    def __init__(self, cfg, label_names, pad_token_id=0, seed=0, dtype="float32"):
        rng = self.init_task_model(cfg, label_names, pad_token_id, seed)
        self.bert = BertModel(cfg, rng, self.dropout_rng, dtype)
        self.dropout = Dropout(cfg.hidden_dropout_prob, self.dropout_rng)
        self.classifier = Linear(cfg.hidden_size, len(self.label_names), rng, std=cfg.initializer_range, dtype=dtype)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """input_ids, attention_mask: (B, T) -> logits (B, num_labels)."""
        seq, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        self.seq_shape = seq.shape
        return self.classifier(self.dropout(pooled))

    def backward(self, dlogits):
        dpooled = self.dropout.backward(self.classifier.backward(dlogits))
        gradients_ready(self.classifier)
        self.bert.backward(xp.zeros(self.seq_shape, dtype=dpooled.dtype), dpooled)


class MPNetClassificationHead(Module):
    """`classifier` (RoBERTa's head): logits = out_proj(dropout(tanh(dense(dropout(x))))), x the <s> vector."""

    def __init__(self, cfg, n_labels, rng, dropout_source, dtype):
        std = cfg.initializer_range
        self.dense = Linear(cfg.hidden_size, cfg.hidden_size, rng, std=std, dtype=dtype)
        self.out_proj = Linear(cfg.hidden_size, n_labels, rng, std=std, dtype=dtype)
        self.dropout_in = Dropout(cfg.hidden_dropout_prob, dropout_source)  # (Hugging Face applies one module twice)
        self.dropout = Dropout(cfg.hidden_dropout_prob, dropout_source)

    def forward(self, x):  # (B, C) -> (B, num_labels)
        self.z = xp.tanh(self.dense(self.dropout_in(x)))
        return self.out_proj(self.dropout(self.z))

    def backward(self, dlogits):
        """d tanh(u) / du = 1 - tanh(u)^2; returns dx."""
        dz = self.dropout.backward(self.out_proj.backward(dlogits))
        return self.dropout_in.backward(self.dense.backward(dz * (1.0 - self.z * self.z)))


class MPNetForSequenceClassification(TaskModel):
    """MPNetForSequenceClassification: the <s> token's last hidden state through MPNetClassificationHead.

    The body has no pooler (add_pooling_layer=False, as Hugging Face), so a checkpoint's `pooler.*` is not
    used; files keep Hugging Face's names (models/mpnet.py).
    """

    architecture, config_class = "MPNetForSequenceClassification", MPNetConfig
    hf_state = state_from_checkpoint = staticmethod(hf_mpnet_state)
    unused_prefixes = ("mpnet.pooler.", "lm_head.")  # MPNetForMaskedLM's head

    def __init__(self, cfg, label_names, pad_token_id=1, seed=0, dtype="float32"):
        rng = self.init_task_model(cfg, label_names, pad_token_id, seed)
        self.mpnet = MPNetModel(cfg, rng, self.dropout_rng, dtype, add_pooling_layer=False)
        self.classifier = MPNetClassificationHead(cfg, len(self.label_names), rng, self.dropout_rng, dtype)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """input_ids, attention_mask: (B, T) -> logits (B, num_labels)."""
        seq, _ = self.mpnet(input_ids, attention_mask=attention_mask)  # (B, T, C)
        first, self.pool_cache = F.gather_positions_forward(seq, xp.zeros(seq.shape[0], dtype=xp.int64))  # (B, C)
        return self.classifier(first)

    def backward(self, dlogits):
        dfirst = self.classifier.backward(dlogits)
        gradients_ready(self.classifier)
        self.mpnet.backward(F.gather_positions_backward(dfirst, self.pool_cache))

    def checkpoint_state(self):
        return {hf_name(n): a for n, a in self.state_dict().items()}


class GPTForTokenClassification(TaskModel):
    """GPT2ForTokenClassification: logits_t = classifier(dropout(h_t)) at every position.

    Causal attention: a token's label is read from the text up to and including
    it, never from the words after. The head's dropout is resid_pdrop (Hugging
    Face's classifier_dropout, 0.1 unless set).
    """

    architecture, config_class = "GPT2ForTokenClassification", GPTConfig
    hf_state = staticmethod(hf_gpt2_state)

    def __init__(self, cfg, label_names, pad_token_id=0, seed=0, dtype="float32"):
        rng = self.init_task_model(cfg, label_names, pad_token_id, seed)
        self.transformer = GPTTransformer(cfg, rng, self.dropout_rng, dtype)
        self.dropout = Dropout(cfg.resid_pdrop, self.dropout_rng)
        self.classifier = Linear(cfg.n_embd, len(self.label_names), rng, std=cfg.initializer_range, dtype=dtype)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """input_ids, attention_mask: (B, T), right-padded -> logits (B, T, num_labels)."""
        h = self.transformer(input_ids, attention_mask=attention_mask)  # (B, T, C)
        return self.classifier(self.dropout(h))

    def backward(self, dlogits):
        dh = self.dropout.backward(self.classifier.backward(dlogits))
        gradients_ready(self.classifier)
        self.transformer.backward(dh)


class BertForTokenClassification(TaskModel):
    """BertForTokenClassification: logits_t = classifier(dropout(h_t)) at every position.

    Built without the pooler (add_pooling_layer=False, as Hugging Face), so a
    pretraining checkpoint's `bert.pooler.*` is not used, like its `cls.*` heads.
    """

    architecture, config_class = "BertForTokenClassification", BertConfig
    hf_state = staticmethod(hf_bert_state)
    unused_prefixes = ("cls.", "bert.pooler.")

    def __init__(self, cfg, label_names, pad_token_id=0, seed=0, dtype="float32"):
        rng = self.init_task_model(cfg, label_names, pad_token_id, seed)
        self.bert = BertModel(cfg, rng, self.dropout_rng, dtype, add_pooling_layer=False)
        self.dropout = Dropout(cfg.hidden_dropout_prob, self.dropout_rng)
        self.classifier = Linear(cfg.hidden_size, len(self.label_names), rng, std=cfg.initializer_range, dtype=dtype)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """input_ids, attention_mask: (B, T) -> logits (B, T, num_labels)."""
        seq, _ = self.bert(input_ids, token_type_ids, attention_mask)  # (B, T, C)
        return self.classifier(self.dropout(seq))

    def backward(self, dlogits):
        dh = self.dropout.backward(self.classifier.backward(dlogits))
        gradients_ready(self.classifier)
        self.bert.backward(dh)


QA_LABELS = ("LABEL_0", "LABEL_1")  # Hugging Face's default id2label, which its QA models keep


class BertForQuestionAnswering(TaskModel):
    """BertForQuestionAnswering: [start_t, end_t] = qa_outputs(h_t) at every position, no pooler.

    P(answer starts at s) = softmax_t(start)_s, and likewise for its end; the
    answer is the best span (see best_spans). Hugging Face builds the body
    without its pooler (add_pooling_layer=False), so a checkpoint's
    `bert.pooler.*` is not used, like the pretraining heads `cls.*`.
    """

    architecture, config_class = "BertForQuestionAnswering", BertConfig
    hf_state = staticmethod(hf_bert_state)
    unused_prefixes = ("cls.", "bert.pooler.")
    default_labels = QA_LABELS

    def __init__(self, cfg, label_names=QA_LABELS, pad_token_id=0, seed=0, dtype="float32"):
        rng = self.init_task_model(cfg, label_names, pad_token_id, seed)
        self.bert = BertModel(cfg, rng, self.dropout_rng, dtype, add_pooling_layer=False)
        self.qa_outputs = Linear(cfg.hidden_size, 2, rng, std=cfg.initializer_range, dtype=dtype)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """input_ids, attention_mask, token_type_ids: (B, T) -> (start_logits, end_logits), each (B, T)."""
        seq, _ = self.bert(input_ids, token_type_ids, attention_mask)  # (B, T, C)
        logits = self.qa_outputs(seq)  # (B, T, 2)
        return logits[..., 0], logits[..., 1]

    def backward(self, dstart, dend):
        dlogits = xp.stack([dstart, dend], axis=-1)  # (B, T, 2)
        dh = self.qa_outputs.backward(dlogits)
        gradients_ready(self.qa_outputs)
        self.bert.backward(dh)
