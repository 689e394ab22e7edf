"""BitFit (Ben Zaken et al., 2021): train only the backbone's biases, and the head.

    W x + b    with W frozen and b trained, in every Linear, Conv1D and LayerNorm

About 0.1% of BERT's parameters. PEFT has no BitFit format: the result is a
whole model directory, as full fine-tuning saves.
"""

from minillm.peft.model import backbone_name, freeze_backbone


def add_bitfit(model):
    """Freeze the backbone but its biases; the head trains in full. Returns the model."""
    freeze_backbone(model)
    for name, p in getattr(model, backbone_name(model)).named_parameters():
        if name.endswith(".bias"):
            p.requires_grad = True
    return model
