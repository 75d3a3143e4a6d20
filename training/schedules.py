"""Learning-rate schedule: linear warm-up, then cosine or linear decay (or constant)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> `peak` linearly over `warmup_steps`, then down to `peak * final_ratio` at `total_steps`.

    lr(step) for step = optimizer.iterations (0 for the first update):
        step < warmup:  peak * (step + 1) / warmup        (never exactly 0)
        afterwards:     peak * (r + (1 - r) * f(p)),  p = (step - warmup) / (total - warmup) in [0, 1]
                        f = (1 + cos(pi p)) / 2 (cosine), 1 - p (linear), 1 (constant: the peak)
    Steps past `total_steps` keep the final rate.
    """

    def __init__(self, peak, total_steps, warmup_steps=0, decay="cosine", final_ratio=0.1):
        if decay not in ("cosine", "linear", "constant"):
            raise ValueError(f"decay must be cosine, linear or constant; received decay={decay!r}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}]; received {warmup_steps}")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.final_ratio = float(final_ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        warming = self.peak * (step + 1.0) / warmup
        progress = ops.clip((step - self.warmup_steps) / float(max(self.total_steps - self.warmup_steps, 1)), 0, 1)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.decay == "linear":
            shape = 1.0 - progress
        else:
            shape = ops.ones_like(progress)
        decayed = self.peak * (self.final_ratio + (1.0 - self.final_ratio) * shape)
        return ops.where(step < self.warmup_steps, warming, decayed)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "decay": self.decay, "final_ratio": self.final_ratio}
