"""Copies of the demo CNN broken for int8 on purpose, with the float model's outputs unchanged: the models the
selective-quantization tests and benchmark need (one layer whose int8 scale ruins every other value in it)."""


def add_activation_outlier(model, *, layer: str = "dense1", head: str = "logits", unit: int = 0, value=5000.0):
    """Makes `unit` of `layer` always output about `value` (its bias) and zeroes its weights into `head`, in place.

    The float outputs ignore the unit, but an int8 activation scale sized for it rounds every other activation of
    `layer` to a few steps, so whole-model int8 breaks and keeping `head` (with `layer` feeding it) in 16x8 mends it.
    Returns what was changed.
    """
    kernel, bias = model.get_layer(layer).get_weights()
    bias[unit] = value
    model.get_layer(layer).set_weights([kernel, bias])
    kernel, bias = model.get_layer(head).get_weights()
    kernel[unit, :] = 0.0
    model.get_layer(head).set_weights([kernel, bias])
    return {"layer": layer, "unit": unit, "bias": value}
