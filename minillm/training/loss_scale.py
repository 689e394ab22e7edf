"""Dynamic loss scaling for float16 training (Micikevicius et al. 2018, "Mixed Precision Training").

Gradients smaller than float16's smallest subnormal (6e-8) flush to zero.
Multiplying the loss by S before backward multiplies every gradient by S and
lifts them into range; the optimizer divides S out again (AdamW.step's
grad_scale). Too large an S overflows instead: the gradient norm comes back
inf or NaN, the step is skipped (parameters and AdamW's moments untouched)
and S is halved (below 1, scaling is no longer the cause: the trainer
stops as it does on any non-finite gradient). After `growth_interval` good steps in a row S doubles, so it
tracks the largest scale the gradients tolerate.
"""


class DynamicLossScale:
    """The loss scale S and the count of good steps since it last changed."""

    def __init__(self, scale=2.0 ** 16, growth_interval=1000):
        self.scale, self.growth_interval, self.good_steps = float(scale), growth_interval, 0

    def update(self, grads_finite):
        """After a step's backward: True if the step may be applied; an overflow halves S and says skip."""
        if not grads_finite:
            self.scale, self.good_steps = self.scale / 2, 0
            return False
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale, self.good_steps = self.scale * 2, 0
        return True

    def state_dict(self):
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state_dict(self, state):
        self.scale, self.good_steps = float(state["scale"]), int(state["good_steps"])
