"""Optimizers and learning-rate schedules from a recipe's `optimizer` section.

Fields: `name`, `lr`, `schedule` (+ `warmup_steps`), `weight_decay`, `momentum` (sgd), `clipnorm`
(per variable). Optional, for recipes that need them: `beta_1`/`beta_2` (adam, adamw), `min_lr`
(the floor of the cosine schedule; default 0), `global_clipnorm` (one norm over all gradients),
`no_weight_decay` (variable-name patterns the decay skips, e.g. ["gamma", "beta", "bias"]).
"""

import math

import keras
from keras import ops

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}
SCHEDULES = ("constant", "cosine", "onecycle")


@keras.saving.register_keras_serializable(package="zoo")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Leslie Smith's one-cycle: cosine warm-up from lr/25 to lr over `pct_start`, then cosine
    annealing to lr/1e4 (the torch OneCycleLR defaults)."""

    def __init__(self, max_lr, total_steps, pct_start=0.3, div=25.0, final_div=1e4):
        self.max_lr, self.total_steps, self.pct_start = max_lr, total_steps, pct_start
        self.div, self.final_div = div, final_div

    def __call__(self, step):
        step = ops.cast(step, "float32")
        up = max(1.0, self.pct_start * self.total_steps)
        down = max(1.0, self.total_steps - up)
        start, end = self.max_lr / self.div, self.max_lr / self.final_div

        def anneal(a, b, t):
            return b + (a - b) * 0.5 * (1.0 + ops.cos(math.pi * ops.clip(t, 0.0, 1.0)))

        return ops.where(
            step < up,
            anneal(start, self.max_lr, step / up),
            anneal(self.max_lr, end, (step - up) / down),
        )

    def get_config(self):
        return dict(
            max_lr=self.max_lr,
            total_steps=self.total_steps,
            pct_start=self.pct_start,
            div=self.div,
            final_div=self.final_div,
        )


def schedule(config: dict, total_steps: int):
    lr, name, warmup = float(config["lr"]), config["schedule"], int(config.get("warmup_steps", 0))
    if name == "constant":
        return lr
    if name == "cosine":
        alpha = float(config.get("min_lr") or 0.0) / lr if lr else 0.0
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                0.0,
                max(1, total_steps - warmup),
                alpha=alpha,
                warmup_target=lr,
                warmup_steps=warmup,
            )
        return keras.optimizers.schedules.CosineDecay(lr, max(1, total_steps), alpha=alpha)
    if name == "onecycle":
        return OneCycle(lr, total_steps)
    raise ValueError(f"unknown schedule {name!r} (known: {', '.join(SCHEDULES)})")


@keras.saving.register_keras_serializable(package="zoo")
class Restarted(keras.optimizers.schedules.LearningRateSchedule):
    """Two phases: `first` for steps below `boundary`, then `second` from its own step 0, times
    `scale` (fine-tuning: the head alone, then everything at a lower rate)."""

    def __init__(self, first, second, boundary, scale):
        self.first, self.second, self.boundary, self.scale = first, second, boundary, scale

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = ops.maximum(step - self.boundary, 0.0)
        return ops.where(
            step < self.boundary, _at(self.first, step), self.scale * _at(self.second, after)
        )

    def get_config(self):
        return {
            "first": keras.saving.serialize_keras_object(self.first),
            "second": keras.saving.serialize_keras_object(self.second),
            "boundary": self.boundary,
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("first", "second"):
            if isinstance(config[key], dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _at(rate, step):
    return rate(step) if callable(rate) else ops.convert_to_tensor(rate, "float32")


def build(
    config: dict, total_steps: int, loss_scale: bool = False, restart: tuple | None = None
) -> keras.optimizers.Optimizer:
    """`restart=(step, scale)`: the schedule runs to `step`, then again over the steps left,
    scaled (training/transfer.py's unfreezing)."""
    name = config["name"]
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZERS)})")
    rate = schedule(config, total_steps)
    if restart:
        boundary, scale = restart
        rate = Restarted(
            schedule(config, boundary), schedule(config, total_steps - boundary), boundary, scale
        )
    kwargs = {"learning_rate": rate}
    if config.get("weight_decay"):
        kwargs["weight_decay"] = float(config["weight_decay"])
    if config.get("clipnorm"):
        kwargs["clipnorm"] = float(config["clipnorm"])
    if config.get("global_clipnorm"):
        kwargs["global_clipnorm"] = float(config["global_clipnorm"])
    if name == "sgd":
        kwargs.update(momentum=float(config.get("momentum", 0.9)), nesterov=True)
    if name in ("adam", "adamw"):
        kwargs.update(
            {k: float(config[k]) for k in ("beta_1", "beta_2") if config.get(k) is not None}
        )
    optimizer = OPTIMIZERS[name](**kwargs)
    if config.get("no_weight_decay") and config.get("weight_decay"):
        optimizer.exclude_from_weight_decay(var_names=list(config["no_weight_decay"]))
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scale else optimizer
