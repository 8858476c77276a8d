"""The Keras 3 callback in a real `model.fit` on the torch backend (in a subprocess: KERAS_BACKEND must be set
before keras is first imported)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if importlib.util.find_spec("keras") is None:  # importing it here would pick the default backend
    pytest.skip("keras is not installed", allow_module_level=True)

SCRIPT = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, {here!r})
    import keras, numpy as np
    from tinyctc import ALPHABET, CLASSES, make_data
    from ctcdoctor.integrations.keras import CTCDoctorCallback

    inputs, targets = make_data(64, 0)
    x, y = inputs.transpose(1, 2).numpy(), targets.numpy()       # (N, T, F) and labels padded with the blank 0

    def fit(lr, epochs, **options):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((12, CLASSES)), keras.layers.Dense(16, activation="tanh"),
                                  keras.layers.Dense(CLASSES)])
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.CTC())
        callback = CTCDoctorCallback(every=10, data=(x[:16], y[:16]), alphabet=ALPHABET, patience=100, **options)
        history = model.fit(x, y, batch_size=8, epochs=epochs, callbacks=[callback], verbose=0)
        run = callback.monitor.run_data()
        return {{"steps": callback._step, "epochs": len(history.history["loss"]), "keras_loss": history.history["loss"],
                 "losses": run.scalars["loss"].values.tolist(), "codes": [f.code for f in callback.report.findings],
                 "severities": [f.severity.value for f in callback.report.findings],
                 "stopped": callback.report.result["stopped"], "cer": callback.report.result["latest"]["cer"],
                 "blank": callback.report.result["meta"]["blank"], "reduction": callback.report.result["meta"]["reduction"]}}

    def scheduled():  # step k trains at 0.02 / k: the schedule is read at the optimizer's iterations, k - 1
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((12, CLASSES)), keras.layers.Dense(CLASSES)])
        rate = keras.optimizers.schedules.InverseTimeDecay(0.02, decay_steps=1, decay_rate=1.0)
        model.compile(optimizer=keras.optimizers.Adam(rate), loss=keras.losses.CTC())
        callback = CTCDoctorCallback(every=10, data=(x[:16], y[:16]), alphabet=ALPHABET, echo=False)
        model.fit(x, y, batch_size=8, epochs=3, callbacks=[callback], verbose=0)
        lr = callback.monitor.run_data().scalars["lr"]
        return dict(zip(lr.steps.tolist(), lr.values.tolist()))

    print(json.dumps({{"healthy": fit(0.02, 10, metrics_path=sys.argv[1]), "broken": fit(1000.0, 10, echo=False),
                      "scheduled": scheduled()}}))
''')


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """SCRIPT's fits, then HEADS's, in one subprocess (one import of torch and keras for both): (the process, the
    monitor's metrics file, SCRIPT's results, HEADS's results). Each script prints its results as one JSON line."""
    folder = tmp_path_factory.mktemp("keras")
    here = str(Path(__file__).resolve().parent)
    script = folder / "fit.py"
    # clear_session between the two: HEADS starts from a fresh Keras state, as in a process of its own
    # os._exit once both have printed: an exception in either is still a traceback and exit 1, and the callback holds no
    # atexit handler or buffer (the metrics file is read below); what is skipped is the interpreter's teardown of keras
    # and torch, about 4 s on a loaded 2-core machine
    script.write_text(SCRIPT.format(here=here) + "\nkeras.backend.clear_session()\n" + HEADS.format(here=here)
                      + "\nsys.stdout.flush(); sys.stderr.flush(); os._exit(0)\n")
    done = subprocess.run([sys.executable, str(script), str(folder / "m.jsonl")], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (fit_line,) = [line for line in done.stdout.splitlines() if line.startswith('{"healthy": ')]
    heads_line = done.stdout.strip().splitlines()[-1]
    return done, folder / "m.jsonl", json.loads(fit_line), json.loads(heads_line)


def test_model_fit_is_monitored_and_stopped_on_an_error(fits):
    done, metrics, results, _ = fits
    assert "[ctcdoctor] step 80" in done.stdout and "target → decoded" in done.stdout
    healthy, broken = results["healthy"], results["broken"]
    assert healthy["steps"] == 80 and healthy["stopped"] is None and "error" not in healthy["severities"]
    assert healthy["cer"] < 0.5 and healthy["blank"] == 0 and healthy["reduction"] == "sum"
    # each batch's own loss, recovered from Keras' running mean: the epoch's mean is what Keras reports
    for epoch, keras_loss in enumerate(healthy["keras_loss"]):
        assert sum(healthy["losses"][8 * epoch : 8 * epoch + 8]) / 8 == pytest.approx(keras_loss, rel=1e-4)
    assert broken["steps"] == 10 and broken["epochs"] == 2 and broken["stopped"]["code"] in ("CTC203", "CTC200")
    # the rate each step trained at (read after the step it was the next one's: 0.01 at step 1), at every step, not
    # only at the evaluations (steps 1, 10, 20): a blow-up of a few steps is judged by the rate it ran at
    assert results["scheduled"] == pytest.approx({str(step): 0.02 / step for step in range(1, 25)}, rel=1e-5)

    from ctcdoctor.training import diagnose_run

    assert [found.code for found in diagnose_run(metrics).findings] == healthy["codes"]


HEADS = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, {here!r})
    import keras, numpy as np
    from keras import ops
    from tinyctc import ALPHABET, CLASSES, make_data
    from ctcdoctor.integrations.keras import CTCDoctorCallback

    inputs, targets = make_data(64, 0)
    x, y = inputs.transpose(1, 2).numpy(), targets.numpy()

    class Subclassed(keras.Model):  # the softmax sits in call(): no layer shows it
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(CLASSES)
        def call(self, inputs):
            return ops.softmax(self.dense(inputs), axis=-1)

    def log_of_probabilities(y_true, y_pred):  # Keras' captcha OCR form: the loss takes the log of a softmax
        lengths = ops.cast(ops.sum(y_true != 0, axis=-1), "int32")
        frames = ops.full((ops.shape(y_pred)[0],), ops.shape(y_pred)[1], dtype="int32")
        return ops.ctc_loss(y_true, ops.log(y_pred + 1e-7), lengths, frames, mask_index=0)

    def head(kind):
        if kind == "subclassed":
            return Subclassed()
        last = [keras.layers.Dense(CLASSES), keras.layers.Softmax()] if kind == "softmax_layer" else [
            keras.layers.Dense(CLASSES, activation=None if kind == "linear" else "softmax")]
        return keras.Sequential([keras.Input((12, CLASSES)), keras.layers.Dense(16, activation="tanh"), *last])

    def fit(kind, loss):
        keras.utils.set_random_seed(0)
        model = head(kind)
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss=loss)
        callback = CTCDoctorCallback(every=5, data=(x[:16], y[:16]), alphabet=ALPHABET, echo=False)
        model.fit(x, y, batch_size=8, epochs=2, callbacks=[callback], verbose=0)
        found = [f.to_dict() for f in callback.report.findings if f.code == "CTC020"]
        stopped = callback.report.result["stopped"] or {{}}
        return {{"steps": callback._step, "stopped": stopped.get("code"), "stopped_step": stopped.get("step"),
                 "summary": callback.monitor.summary(), "ctc020": found}}

    print(json.dumps({{"dense_softmax": fit("dense_softmax", keras.losses.CTC()), "softmax_layer": fit("softmax_layer", "ctc"),
                      "subclassed": fit("subclassed", keras.losses.ctc), "linear": fit("linear", keras.losses.CTC()),
                      "own_log": fit("dense_softmax", log_of_probabilities)}}))
''')


def test_a_softmax_head_fed_to_keras_ctc_is_an_error_found_before_the_first_step(fits):
    runs = fits[3]
    dense = runs["dense_softmax"]
    # found before the first step, but Keras reads model.stop_training after each batch: fit stops after step 1,
    # and the monitor says so (it said "stop at step 0" after recording step 1)
    assert dense["stopped"] == "CTC020" and dense["steps"] == 1 and dense["stopped_step"] == 1
    assert dense["summary"].endswith("; stop at step 1 on CTC020")
    [found] = dense["ctc020"]
    assert found["severity"] == "error" and "'dense" in found["message"] and "keras.losses.CTC applies log_softmax" in found["message"]
    assert found["hint"].startswith('Remove activation="softmax" from the last layer')
    [layer] = runs["softmax_layer"]["ctc020"]
    assert layer["hint"].startswith("Remove the Softmax layer") and runs["softmax_layer"]["stopped"] == "CTC020"
    # a softmax inside call() shows only in the outputs: caught at the first evaluation
    [measured] = runs["subclassed"]["ctc020"]
    assert measured["evidence"]["measured"] and "Drop the softmax" in measured["hint"]
    assert runs["subclassed"]["stopped"] == "CTC020"
    # healthy: logits into keras.losses.CTC, and a softmax head whose own loss takes the log
    for quiet in ("linear", "own_log"):
        assert runs[quiet]["ctc020"] == [] and runs[quiet]["stopped"] is None and runs[quiet]["steps"] == 16, quiet
