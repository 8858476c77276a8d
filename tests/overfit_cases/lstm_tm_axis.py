"""My set-up 3: a time-major speech LSTM (DeepSpeech-style, 2x time subsampling by a Conv1d front
end), packed sequences, and log_softmax on the wrong axis.

Mistake: the author copied `F.log_softmax(x, dim=1)` from a batch-first classifier; with the
time-major (T, N, C) output, dim=1 is the *batch* axis, so each frame's class scores are normalised
across the utterances of the batch. The criterion uses the output as is.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader

from ctcdoctor import Setup
from ctcdoctor.toydata import N_MELS, PHONES, SpeechDataset, collate_speech


class SpeechRNN(nn.Module):
    def __init__(self, n_feats=N_MELS, n_class=len(PHONES) + 1, hidden=96):  # noqa: B008 - the user's code, as written
        super().__init__()
        self.subsample = nn.Conv1d(n_feats, hidden, kernel_size=3, stride=2, padding=1)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, n_class)

    def forward(self, x, lengths):
        # x: (T, N, F) time-major
        x = self.subsample(x.permute(1, 2, 0)).permute(2, 0, 1)  # (T', N, H)
        out_lengths = (lengths + 1) // 2
        packed = pack_padded_sequence(x, out_lengths.cpu(), enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, total_length=x.size(0))
        out = self.fc(out)
        return F.log_softmax(out, dim=1), out_lengths  # BUG: dim=1 is the batch axis of (T, N, C)


class Wrapper(nn.Module):
    """model(inputs) with inputs = (features, lengths)"""
    def __init__(self):
        super().__init__()
        self.net = SpeechRNN()

    def forward(self, inputs):
        feats, lengths = inputs
        return self.net(feats, lengths)


def collate(items):
    feats, targets, in_lens, tgt_lens = collate_speech(items)  # feats (N, F, T)
    return (feats.permute(2, 0, 1).contiguous(), in_lens), targets, in_lens, tgt_lens


ctc_loss = nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)


def criterion(output, batch):
    log_probs, out_lengths = output
    _, targets, _, target_lengths = batch
    return ctc_loss(log_probs, targets, out_lengths, target_lengths)


def build():
    data = SpeechDataset(n=64, seed=1)
    loader = DataLoader(data, batch_size=16, shuffle=True, collate_fn=collate)
    return Setup(model=Wrapper(), loader=loader, blank=0, alphabet=list(PHONES), criterion=criterion)
