"""A tiny Hugging Face Trainer run with CTCDoctorCallback, for the callback tests (run in-process, or under
torchrun for the two-process test): `python trainer_run.py OUTPUT_DIR MODE[,MODE...] [STEPS]`, MODE healthy or broken.

The modes run one after the other in the same processes (one torchrun launch, one import of torch and transformers
per rank, for both); for each, every process writes `MODE/rank<R>.json` (its global step, whether the callback
stopped training) under OUTPUT_DIR.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "frameworks"))

import torch  # noqa: E402
from hfkit import audio_model, example, processor  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

from ctcdoctor.integrations.transformers import CTCDoctorCallback, TrainingStopped  # noqa: E402


def make_trainer(output_dir: str, broken: bool, steps: int = 4, **callback_options) -> tuple[Trainer, CTCDoctorCallback]:
    proc = processor()
    model = audio_model("Wav2Vec2ForCTC", proc)
    data = example.SpeechDataset(proc)
    if broken:  # clips cut to 0.2 s, transcripts not: 10 frames for up to 12 labels (CTC001, CTC104)
        for item in data.items[::4]:
            item["input_values"] = item["input_values"][: int(0.2 * example.RATE)]
    callback = CTCDoctorCallback(**callback_options)
    args = TrainingArguments(output_dir=output_dir, max_steps=steps, per_device_train_batch_size=4, use_cpu=True,
                             report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True, learning_rate=1e-4,
                             dataloader_num_workers=0, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=example.DataCollatorCTCWithPadding(proc), processing_class=proc, callbacks=[callback])
    return trainer, callback


def run_mode(output_dir: Path, mode: str, steps: int) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    trainer, callback = make_trainer(str(output_dir), mode == "broken", steps)
    raised = None
    try:
        trainer.train()
    except TrainingStopped as error:  # the check stopped training before its first step
        raised = type(error).__name__
    rank = int(os.environ.get("RANK", "0"))
    record = {"rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1")), "global_step": trainer.state.global_step,
              "stopped": callback.stopped, "checked": callback.report is not None, "raised": raised}
    Path(output_dir, f"rank{rank}.json").write_text(json.dumps(record), encoding="utf-8")
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # every rank is done with this mode before the next one starts


def main() -> None:
    output_dir, modes = Path(sys.argv[1]), sys.argv[2].split(",")
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    for mode in modes:
        run_mode(output_dir / mode, mode, steps)
    if torch.distributed.is_initialized():
        # Both records are written; then leave without the interpreter's teardown, which on a loaded machine now and
        # then hangs or aborts in gloo's threads (with or without destroy_process_group), after the test's work.
        torch.distributed.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
