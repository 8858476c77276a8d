"""The training monitor in a real `Trainer` on the transformers 5 CTC models (ParakeetForCTC, OmniASRForCTC; tiny
set-ups of tests/frameworks/hfkit_v5.py): the blank is the one the model's loss takes (OmniASR: config.blank_token_id,
not config.pad_token_id), the decodes stop at each sample's real frame count (the mask the model takes: OmniASR's
padding_mask; lengths by _get_subsampling_output_length), and `ctcdoctor logs` reads the JSONL without findings."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frameworks"))

from hfkit_v5 import KINDS, build_model, char_tokenizer, loader, model_class  # noqa: E402

from ctcdoctor.cli.app import main  # noqa: E402
from ctcdoctor.integrations.transformers import CTCDoctorCallback  # noqa: E402
from ctcdoctor.training.monitor import Monitor  # noqa: E402


def real_frames(model, batch):
    """Each sample's frame count, from the model run on that sample alone (its padding cut off)."""
    name = model.main_input_name
    key = "padding_mask" if "padding_mask" in batch else "attention_mask"
    values, mask = batch[name], batch[key]
    frames = []
    model.eval()
    with torch.no_grad():
        for row in range(values.shape[0]):
            length = int(mask[row].sum())
            alone = values[row : row + 1, ..., :length] if values.dim() == 3 and values.shape[1] == 1 else \
                values[row : row + 1, :length]
            frames.append(model(**{name: alone, key: mask[row : row + 1, :length]}).logits.shape[1])
    return frames


def greedy(logits, frames, blank, tokenizer):
    """The greedy decode of one sample's first `frames` frames, as text of the tokenizer's tokens."""
    best = logits[:frames].argmax(-1).tolist()
    kept = [c for i, c in enumerate(best) if c != blank and (i == 0 or c != best[i - 1])]
    return "".join(tokenizer.convert_ids_to_tokens(kept))


@pytest.fixture(scope="module", params=["ParakeetForCTC", "OmniASRForCTC"])
def trained(request, tmp_path_factory):
    """A 1-step Trainer run with the monitor evaluating that step; what the monitor was fed (one run per model)."""
    name = request.param
    tmp_path = tmp_path_factory.mktemp(name)
    model_class(name)
    tokenizer = char_tokenizer(KINDS[name].blank_first)
    model = build_model(name, tokenizer)
    data = loader(name, tokenizer)
    fed = []
    update = Monitor.update

    def spy(self, step, loss=None, **kwargs):
        fed.append({"monitor": self, **kwargs})
        return update(self, step, loss, **kwargs)

    callback = CTCDoctorCallback(every=1, check=False, print_report=False, samples=4,
                                 metrics_path=str(tmp_path / "metrics.jsonl"))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, report_to=[], save_strategy="no",
        use_cpu=True, disable_tqdm=True, remove_unused_columns=False)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=list(data.dataset), data_collator=data.collate_fn,
                                   processing_class=tokenizer, callbacks=[callback])
    inputs = []  # the batch the step trained on (the Trainer shuffles)
    hook = model.register_forward_hook(lambda module, args, kwargs, output: inputs.append(kwargs) if module.training
                                       else None, with_kwargs=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Monitor, "update", spy)
        trainer.train()
    hook.remove()
    batch = {key: value.detach().cpu() for key, value in inputs[-1].items() if isinstance(value, torch.Tensor)}
    return name, model, tokenizer, batch, fed, tmp_path


def test_monitor_decodes_without_the_blank_and_stop_at_each_samples_real_frames(trained):
    name, model, tokenizer, batch, fed, _ = trained
    assert len(fed) == 1 and fed[0]["logits"] is not None
    monitor = fed[0]["monitor"]
    blank = int(model.config.blank_token_id if name == "OmniASRForCTC" else model.config.pad_token_id)
    assert monitor.blank == blank  # OmniASR: config.blank_token_id (0), not config.pad_token_id (1)
    frames = real_frames(model, batch)
    assert fed[0]["output_lengths"] is not None, "the padded frames are decoded too"
    assert fed[0]["output_lengths"].tolist() == frames
    assert max(frames) == fed[0]["logits"].shape[1] > min(frames)  # the batch is padded: the test can tell
    blank_token = tokenizer.convert_ids_to_tokens(blank)
    decodes = [decoded for _, decoded in monitor.latest.examples]
    assert len(decodes) == 4
    for row, decoded in enumerate(decodes):
        assert blank_token not in decoded
        assert decoded == greedy(fed[0]["logits"][row], frames[row], blank, tokenizer)


def test_logs_reads_the_monitors_jsonl_without_findings(trained, capsys):
    name, model, _, _, _, run = trained
    meta = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["meta"]
    assert meta["blank"] == (0 if name == "OmniASRForCTC" else model.config.pad_token_id)
    capsys.readouterr()
    assert main(["logs", str(run), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["findings"] == [], report["findings"]
