"""Set-ups shaped like public model code a fresh-eyes trial ran ctcdoctor on (see tests/test_heads_and_arguments.py):

- HTR-best-practices' `head_type: 'both'`: the model returns `(y, y_aux)`, two float `(T, N, C)` outputs (an RNN
  head and a CNN shortcut head), and its loss adds both;
- deepspeech.pytorch's DeepSpeech: `forward(self, x, lengths, hs=None)` returns `(out, output_lengths, hidden)`, pads
  its output to the batch's longest sample (pack_padded_sequence), and is fed `inputs = (x, lengths)`.

Tiny versions of both, on random features, so that `check` and `overfit` run in seconds.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ctcdoctor import Setup

FEATURES, CLASSES, BATCH = 8, 6, 4
LENGTHS = [40, 36, 31, 26, 40, 33, 28, 24]
LABELS = [[1, 2, 3], [2, 4], [5, 1, 2], [3, 4], [1, 5], [2, 3, 4], [4, 1], [5, 3]]


def _batches(as_arguments: bool, lengths=LENGTHS, labels=LABELS):
    """(inputs, targets, input_lengths, target_lengths), inputs (N, F, L) or `(x, lengths)` for forward(x, lengths);
    each batch sorted longest first (as DeepSpeech's collate does)."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for start in range(0, len(lengths), BATCH):
        chunk = sorted(zip(lengths[start:start + BATCH], labels[start:start + BATCH]), key=lambda item: -item[0])
        sizes = torch.tensor([length for length, _ in chunk], dtype=torch.int32)
        x = torch.zeros(len(chunk), FEATURES, int(sizes.max()))
        for row, (length, _) in enumerate(chunk):
            x[row, :, :length] = torch.randn(FEATURES, length, generator=generator)
        targets = torch.tensor([symbol for _, label in chunk for symbol in label])
        target_lengths = torch.tensor([len(label) for _, label in chunk], dtype=torch.int32)
        batches.append(((x, sizes) if as_arguments else x, targets, sizes, target_lengths))
    return batches


# ----------------------------------------------------------------------------- two heads (HTR-best-practices 'both')


class TwoHeads(nn.Module):
    """(N, F, L) -> a conv trunk (stride 2) -> an LSTM head and a conv shortcut head, both raw (T, N, C) scores."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Conv1d(FEATURES, 16, kernel_size=2, stride=2)
        self.rnn = nn.LSTM(16, 16)
        self.fc = nn.Linear(16, CLASSES)
        self.shortcut = nn.Conv1d(16, CLASSES, kernel_size=3, padding=1)

    def forward(self, x):
        features = torch.relu(self.trunk(x))              # (N, 16, T)
        y, _ = self.rnn(features.permute(2, 0, 1))         # (T, N, 16)
        return self.fc(y), self.shortcut(features).permute(2, 0, 1)


def _ctc(scores, batch):
    _, targets, widths, target_lengths = batch
    frames = torch.full((scores.shape[1],), scores.shape[0], dtype=torch.int32)
    return F.ctc_loss(F.log_softmax(scores, dim=2), targets, frames, target_lengths, reduction="sum",
                      zero_infinity=True) / scores.shape[1]


def both_heads_loss(out, batch):  # HTR-best-practices trainer.train with head 'both'
    output, aux_output = out
    return _ctc(output, batch) + 0.1 * _ctc(aux_output, batch)


def build_two_heads():
    torch.manual_seed(0)
    lengths = [40] * 8  # the images of a batch are as wide as each other: every sample gets all T frames
    return Setup(model=TwoHeads(), loader=_batches(False, lengths), blank=0, criterion=both_heads_loss)


def first_head_loss(out, batch):
    """The first head alone, with the default mean reduction: reference CTC exactly. It must be given what the model
    returned, the (y, y_aux) tuple (a criterion that raises on it would be audited with the output tensor alone)."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"the criterion expected the model's (y, y_aux), not {type(out).__name__}")
    _, targets, _, target_lengths = batch
    output = out[0]
    frames = torch.full((output.shape[1],), output.shape[0], dtype=torch.long)
    return F.ctc_loss(output.log_softmax(-1), targets, frames, target_lengths)


def build_two_heads_first_loss():
    torch.manual_seed(0)
    return Setup(model=TwoHeads(), loader=_batches(False, [40] * 8), blank=0, criterion=first_head_loss)


class OddItem(TwoHeads):
    def forward(self, x):
        return super().forward(x)[0], "greedy"


def build_odd_item():
    torch.manual_seed(0)
    return Setup(model=OddItem(), loader=_batches(False, [40] * 8), blank=0)


# ----------------------------------------------------------------------------- forward(x, lengths) (DeepSpeech)


class DeepSpeechLike(nn.Module):
    """forward(x, lengths, hs=None) -> (log-probs (N, T, C), output lengths, hidden state), as DeepSpeech: a stride-2
    conv, an LSTM over pack_padded_sequence (so T is the longest output length in the batch), a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(FEATURES, 16, kernel_size=3, stride=2, padding=1)
        self.rnn = nn.LSTM(16, 16)
        self.fc = nn.Linear(16, CLASSES)

    def get_seq_lens(self, lengths):
        return (lengths + 1) // 2  # kernel 3, stride 2, padding 1

    def forward(self, x, lengths, hs=None):
        lengths = lengths.cpu().int()
        output_lengths = self.get_seq_lens(lengths)
        features = torch.relu(self.conv(x)).permute(2, 0, 1)  # (T, N, 16)
        packed = pack_padded_sequence(features, output_lengths, enforce_sorted=False)
        y, hidden = self.rnn(packed, hs)
        y, _ = pad_packed_sequence(y)
        return self.fc(y).transpose(0, 1).log_softmax(-1), output_lengths, [hidden]


def deepspeech_loss(output, batch):  # DeepSpeech.training_step
    out, output_sizes, _ = output
    return F.ctc_loss(out.transpose(0, 1), batch[1], output_sizes, batch[3])


def build_deepspeech():
    torch.manual_seed(0)
    return Setup(model=DeepSpeechLike(), loader=_batches(True), blank=0, criterion=deepspeech_loss)


def build_deepspeech_tensor_inputs():
    # The user's loader gives x alone: forward(x, lengths) cannot be called with it.
    torch.manual_seed(0)
    return Setup(model=DeepSpeechLike(), loader=_batches(False), blank=0)


class TwoArgs(nn.Module):
    """The hand-written wrapper a user writes today: forward(inputs) unpacks (x, lengths)."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, inputs):
        out, output_sizes, _ = self.m(*inputs)
        return out, output_sizes


def build_deepspeech_wrapped():
    torch.manual_seed(0)
    return Setup(model=TwoArgs(DeepSpeechLike()), loader=_batches(True), blank=0)
