"""Loader batches close to the protocol but not in it (lists of label tensors, numpy arrays, dicts with keys of
their own): exit 2 with what the batch holds and the change that fits it, never a torch exception's text."""
from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.load.batch_shapes import key_guesses, key_role

MODEL = textwrap.dedent(
    '''
    import torch
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 6, 2, stride=2)

        def forward(self, x):
            return self.conv(x).permute(2, 0, 1).log_softmax(-1)

    def parts(n=3):
        generator = torch.Generator().manual_seed(0)
        labels = [torch.tensor([1, 2]), torch.tensor([3]), torch.tensor([4, 5, 1])][:n]
        padded = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True)
        return torch.randn(n, 4, 20, generator=generator), labels, padded, torch.tensor([20] * n), torch.tensor([2, 1, 3][:n])
    '''
)


def check(write_module, body: str):
    write_module("model.py", MODEL)
    write_module("spec.py", "from model import *\n" + textwrap.dedent(body))
    return CliRunner().invoke(app, ["check", "spec.py"])


def test_targets_as_a_list_of_label_tensors_say_concatenate_or_pad(write_module):
    result = check(write_module, '''
        def build():
            x, labels, _, lengths, label_lengths = parts()
            return Model(), [(x, labels, lengths, label_lengths)]
    ''')
    assert result.exit_code == 2, result.output
    assert "targets are a list of 3 tensors (one label sequence per sample), not one tensor" in result.output
    assert "torch.cat(labels)" in result.output and "pad_sequence(labels, batch_first=True)" in result.output
    assert "can be converted to an index" not in result.output  # torch's own words explain nothing here


def test_ragged_label_lists_get_the_same_advice(write_module):
    result = check(write_module, '''
        def build():
            x, labels, _, lengths, label_lengths = parts()
            return Model(), [(x, [label.tolist() for label in labels], lengths, label_lengths)]
    ''')
    assert result.exit_code == 2 and "targets are a list of 3 lists" in result.output
    assert "torch.as_tensor(label, dtype=torch.long)" in result.output


def test_numpy_inputs_are_exit_2_naming_torch_from_numpy(write_module):
    result = check(write_module, '''
        def build():
            x, _, padded, lengths, label_lengths = parts()
            return Model(), [(x.numpy(), padded.numpy(), lengths.numpy(), label_lengths.numpy())]
    ''')
    assert result.exit_code == 2, result.output
    assert "inputs are a numpy.ndarray (float32, shape (3, 4, 20)), not a torch tensor" in result.output
    assert "so are targets, input_lengths and target_lengths" in result.output
    assert "torch.from_numpy in the collate_fn" in result.output
    assert "CTC999" not in result.output and "conv1d()" not in result.output


def test_numpy_targets_and_lengths_beside_tensor_inputs_are_read_as_lists_are(write_module):
    result = check(write_module, '''
        def build():
            x, _, padded, lengths, label_lengths = parts()
            return Model(), [(x, padded.numpy(), lengths.numpy(), label_lengths.numpy())]
    ''')
    assert result.exit_code in (0, 1) and "numpy" not in result.output


def test_a_dict_with_keys_of_its_own_says_which_is_which_and_how_to_rename(write_module):
    result = check(write_module, '''
        def build():
            x, _, padded, lengths, label_lengths = parts()
            return Model(), [{"images": x, "labels": padded, "widths": lengths, "label_lengths": label_lengths}]
    ''')
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert ("'images' looks like inputs, 'labels' looks like targets, 'widths' looks like input_lengths, "
            "'label_lengths' looks like target_lengths") in output
    assert ("{'inputs': images, 'targets': labels, 'input_lengths': widths, 'target_lengths': label_lengths}"
            in output)


def test_the_documented_renaming_wrapper_works(write_module):
    # docs/protocol.md, Batches: a loader object whose __iter__ renames each batch.
    result = check(write_module, '''
        class Renamed:
            def __init__(self, loader):
                self.loader = loader

            def __iter__(self):
                for b in self.loader:
                    yield {"inputs": b["images"], "targets": b["labels"],
                           "input_lengths": b["widths"], "target_lengths": b["label_lengths"]}

        def build():
            x, _, padded, lengths, label_lengths = parts()
            loader = [{"images": x, "labels": padded, "widths": lengths, "label_lengths": label_lengths}]
            return Model(), Renamed(loader)
    ''')
    assert result.exit_code in (0, 1), result.output
    assert "lacks" not in result.output


@pytest.mark.parametrize(("key", "role"), [
    ("images", "inputs"), ("x", "inputs"), ("input_values", "inputs"), ("feats", "inputs"), ("spectrogram", "inputs"),
    ("labels", "targets"), ("y", "targets"), ("transcripts", "targets"), ("targetIds", "targets"), ("input_ids", "inputs"),
    ("widths", "input_lengths"), ("x_lens", "input_lengths"), ("feat_lengths", "input_lengths"), ("lengths", "input_lengths"),
    ("label_lengths", "target_lengths"), ("ylen", "target_lengths"), ("target_lens", "target_lengths"),
    ("speaker", None), ("meta", None),
])
def test_key_roles(key, role):
    assert key_role(key) == role


def test_two_keys_that_look_alike_are_not_guessed():
    guesses = key_guesses(["images", "labels", "lengths", "widths", "label_lengths"], ["inputs", "targets", "input_lengths",
                                                                                      "target_lengths"])
    assert "input_lengths" not in guesses and guesses["targets"] == "labels"
