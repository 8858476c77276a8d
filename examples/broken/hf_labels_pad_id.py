"""Broken (Hugging Face): the collator pads labels with the pad id instead of -100.

The bug: the collator returns ``tokenizer.pad(labels)["input_ids"]`` as is, so the labels are
padded with "[PAD]" (id 14), which is also the CTC blank (``config.pad_token_id``), instead
of -100.

In real training: with transformers 5 nothing goes wrong, because its CTC loss drops labels
equal to the blank. With transformers 4 (``labels >= 0``) every padded position is a blank
*target*: the model is trained to emit the blank as a character at the end of every short
transcript in a batch, and CTC011 reports it. The same script breaks on another version.

Fix: ``labels = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)``,
as ``DataCollatorCTCWithPadding`` does.

Expected finding: CTC107
"""
from __future__ import annotations

import torch
from _hf_base import hf

from ctcdoctor import Setup


class Collator(hf.DataCollatorCTCWithPadding):
    def __call__(self, features):
        batch = self.processor.feature_extractor.pad([{"input_values": f["input_values"]} for f in features],
                                                     padding=True, return_tensors="pt")
        labels = self.processor.tokenizer.pad([{"input_ids": f["labels"]} for f in features], padding=True,
                                              return_tensors="pt")
        batch["labels"] = labels["input_ids"]  # BUG: padded with the pad id (the blank), not -100
        return batch


def build():
    torch.manual_seed(0)
    processor = hf.make_processor()
    loader = hf.make_loader(processor, collator=Collator(processor))
    return Setup(model=hf.make_model(processor), loader=loader, processor=processor)
