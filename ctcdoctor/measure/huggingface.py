"""The `hf` input of the Hugging Face checks (CTC100-CTC107): facts about a transformers `*ForCTC`
model, its tokenizer and feature extractor, and the collator's batches; None for any other set-up.

transformers is never imported here: a set-up holds a transformers model only when the user's
module imported it already.
"""
from __future__ import annotations

from typing import Any

from ctcdoctor.engine import Context, provides


@provides("hf")
def _hf(context: Context) -> Any:
    """`HFFacts`, or None when the set-up's model is not a transformers CTC model (nor the wrapper around one)."""
    from ctcdoctor.frameworks.hf_facts import describe_hf
    from ctcdoctor.frameworks.hf_model import HF_KEY
    from ctcdoctor.frameworks.huggingface import is_hf_ctc_model

    model = getattr(context.setup, "model", None)  # scan has no model: no Hugging Face facts
    if model is None:
        return None
    if not is_hf_ctc_model(model) and not is_hf_ctc_model(getattr(model, "model", None)):
        return None
    batches = [batch.raw[HF_KEY] if isinstance(batch.raw, dict) and HF_KEY in batch.raw else batch.raw
               for batch in context.batches]
    setup = context.setup
    return describe_hf(model, batches, tokenizer=getattr(setup, "tokenizer", None), processor=getattr(setup, "processor", None))
