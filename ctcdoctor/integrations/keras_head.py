"""Is a Keras model's softmax head fed to Keras' own CTC loss? (CTC020 for Keras.)

`keras.losses.CTC` (and `keras.losses.ctc`, `loss="ctc"`) hands `y_pred` to
`keras.ops.ctc_loss`, which applies `log_softmax` itself: it expects logits. A head that ends
in softmax makes it train on log_softmax(softmax(z)), where no class can be more than e times
likelier than another in a frame: the loss sticks near its start and the decodes stay blank.
The output values alone cannot show this (probabilities are what a softmax head should give
a Keras 2 `ctc_batch_cost`, which takes their log), so these functions read the compiled loss
and the output layer; they return findings and print nothing.
"""
from __future__ import annotations

from typing import Any

import keras

from ctcdoctor.findings import Finding
from ctcdoctor.registry import finding

LOSS_NAME = "keras.losses.CTC"
WHY = (f"the compiled loss {LOSS_NAME} applies log_softmax to the model output (it expects logits), so it trains on "
       "log_softmax(softmax(z)): no class can be more than e times likelier than another in a frame, the loss sticks "
       "near its start and the decodes stay blank")


def is_keras_ctc(loss: Any) -> bool:
    """True for Keras' CTC loss in any spelling: `keras.losses.CTC()`, `keras.losses.ctc`, `"ctc"`."""
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except (ValueError, TypeError):  # an unknown name: not Keras' CTC
            return False
    return getattr(loss, "fn", loss) is keras.losses.ctc


def _output_layer(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    return getattr(history, "operation", None)


def ctc_heads(model: Any) -> list[Any]:
    """The output layers whose compiled loss is Keras' CTC; None where the layer is unknown (a subclassed model)."""
    loss = getattr(model, "loss", None)
    layers = [_output_layer(tensor) for tensor in (getattr(model, "outputs", None) or [])]
    if isinstance(loss, dict):
        names = list(getattr(model, "output_names", None) or [])
        pairs = [(layers[names.index(key)] if key in names and names.index(key) < len(layers) else None, value)
                 for key, value in loss.items()]
    elif isinstance(loss, (list, tuple)):
        pairs = [(layers[index] if index < len(layers) else None, value) for index, value in enumerate(loss)]
    else:
        pairs = [(layers[0] if len(layers) == 1 else None, loss)]
    return [layer for layer, value in pairs if is_keras_ctc(value)]


def _softmax_layer(layer: Any) -> bool:
    if type(layer).__name__ == "Softmax":
        return True
    return getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


def softmax_head(model: Any) -> Finding | None:
    """CTC020 when an output layer that feeds Keras' CTC loss applies softmax (read from the layer, before training)."""
    for layer in ctc_heads(model):
        if layer is None or not _softmax_layer(layer):
            continue
        kind = type(layer).__name__
        if kind in ("Softmax", "Activation"):
            change = f"Remove the {kind} layer {layer.name!r} at the end of the model"
        else:
            change = f'Remove activation="softmax" from the last layer {layer.name!r} ({kind}(C) with no activation)'
        message = f"the output layer {layer.name!r} ({kind}) applies softmax, and {WHY}."
        hint = (f"{change}: the model then returns logits, and {LOSS_NAME} applies log_softmax itself. Apply "
                "keras.ops.softmax to the output only where you need probabilities (argmax decoding needs none).")
        evidence = {"framework": "keras", "layer": layer.name, "layer_class": kind, "loss": LOSS_NAME}
        return finding("CTC020", message, hint, evidence)
    return None


def probabilities_to_ctc(model: Any, probabilities: bool) -> Finding | None:
    """CTC020 when the measured outputs are probabilities and Keras' CTC loss gets them (a softmax the layers hide)."""
    if not probabilities or not ctc_heads(model):
        return None
    message = (f"the model's outputs on the monitored samples are probabilities (every value in [0, 1], summing to 1 over "
               f"the classes), and {WHY}.")
    hint = (f"Drop the softmax at the end of the model so that it returns logits: {LOSS_NAME} applies log_softmax "
            "itself. Apply keras.ops.softmax to the output only where you need probabilities.")
    return finding("CTC020", message, hint, {"framework": "keras", "loss": LOSS_NAME, "measured": True})
