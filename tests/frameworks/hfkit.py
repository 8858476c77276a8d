"""Tiny Hugging Face CTC set-ups for the framework tests (a module of its own: see tests/ctchelpers.py).

Every model is random and small (hidden size 32, 2 layers), built from a config: no download.
The data, processor and collator are those of examples/hf_wav2vec2.py.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import transformers

from ctcdoctor.engine import Context, Options, run_checks
from ctcdoctor.load.state import CHECK_THREADS, torch_threads
from ctcdoctor.registry import select_checks

ROOT = Path(__file__).resolve().parents[2]


def _load_example() -> ModuleType:
    key = "_ctcdoctor_test_hf_wav2vec2"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "examples" / "hf_wav2vec2.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


example = _load_example()

#: Settings every tiny audio model shares (the conv encoder has the real models' total stride, 320).
COMMON = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    conv_dim=(32, 32, 32), conv_kernel=(10, 8, 4), conv_stride=(5, 8, 8), num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4, feat_extract_norm="layer", do_stable_layer_norm=True, layerdrop=0.0,
    ctc_loss_reduction="mean", hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0,
)

#: Class name -> (config class name, settings of its own) for the audio-input CTC models.
AUDIO_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "Wav2Vec2ForCTC": ("Wav2Vec2Config", {}),
    "HubertForCTC": ("HubertConfig", {}),
    "WavLMForCTC": ("WavLMConfig", {"num_buckets": 8, "max_bucket_distance": 20}),
    "Data2VecAudioForCTC": ("Data2VecAudioConfig", {"num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 3}),
    "SEWForCTC": ("SEWConfig", {"squeeze_factor": 2}),
    "SEWDForCTC": ("SEWDConfig", {"squeeze_factor": 2, "position_buckets": 8, "max_position_embeddings": 64}),
    "UniSpeechForCTC": ("UniSpeechConfig", {}),
    "UniSpeechSatForCTC": ("UniSpeechSatConfig", {}),
    "Wav2Vec2ConformerForCTC": ("Wav2Vec2ConformerConfig", {"conv_depthwise_kernel_size": 3}),
}


def processor(**kwargs: Any):
    return example.make_processor(**kwargs)


def audio_model(name: str = "Wav2Vec2ForCTC", proc: Any = None, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    proc = proc or processor()
    config_name, own = AUDIO_MODELS[name]
    settings = {**COMMON, **own, "pad_token_id": proc.tokenizer.pad_token_id, "vocab_size": len(proc.tokenizer),
                **overrides}
    torch.manual_seed(seed)
    return getattr(transformers, name)(getattr(transformers, config_name)(**settings))


def loader(proc: Any, dataset: Any = None, collator: Any = None, batch_size: int = 8):
    return example.make_loader(proc, dataset, collator, batch_size=batch_size)


def run(setup: Any, *prefixes: str, max_batches: int = 2):
    """(findings, context) of the checks selected by code prefix (all when none), with torch on the threads
    `ctcdoctor check` gives them (CHECK_THREADS: one; two made these many small ops three times slower on a
    loaded 2-core machine)."""
    context = Context(setup, Options(max_batches=max_batches))
    with torch_threads(CHECK_THREADS):
        findings, _ = run_checks(context, select_checks(list(prefixes)))
    return findings, context


def codes(findings) -> set[str]:
    return {item.code for item in findings}


def serious(findings) -> list[str]:
    """Errors and warnings, as 'CODE: message' (for assertion messages)."""
    return [f"{item.code}: {item.message}" for item in findings if item.severity.value in ("error", "warning")]
