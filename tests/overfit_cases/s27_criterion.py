"""Criteria as real projects write them (tests/test_s27_criterion.py): ESPnet's loss on a returned encoder state,
and deep-text-recognition-benchmark's loss around (N, T, C) raw predictions, each with one planted mistake."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ctcdoctor import Setup


class Encoder(nn.Module):
    """ESPnet-like: forward returns (log-probabilities, lengths, encoder state); `ctc` is the CTC head."""

    def __init__(self, detach_state=False):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.Tanh())
        self.ctc = nn.Linear(32, 6)
        self.detach_state = detach_state

    def forward(self, x):
        hs = self.body(x)
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        return self.ctc(hs).log_softmax(-1), lengths, hs.detach() if self.detach_state else hs


class Recogniser(nn.Module):
    """deep-text-recognition-benchmark-like: raw (N, T, C) predictions, every `stride`-th frame."""

    def __init__(self, stride=1, classes=6):
        super().__init__()
        self.stride = stride
        self.body = nn.Sequential(nn.Linear(8, 32), nn.Tanh())
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(self.body(x[:, :: self.stride]))


def collate(items):
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys), torch.full((len(xs),), xs[0].shape[0]), torch.full((len(xs),), ys[0].shape[0])


def loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 8, generator=g)
    y = torch.randint(1, 6, (8, 3), generator=g)
    y[:, 1] = y[:, 0] % 5 + 1
    return DataLoader(TensorDataset(x, y), batch_size=4, collate_fn=collate)


def adam(params):
    return torch.optim.Adam(params, lr=1e-2)


def espnet_criterion(model):
    def criterion(output, batch):  # ESPnet: self.ctc(encoder_out, encoder_out_lens, ys_pad, ys_lens), its head
        _, hlens, hs = output
        _, ys_pad, _, ys_lens = batch
        log_probs = model.ctc(hs).log_softmax(2).transpose(0, 1)
        return F.ctc_loss(log_probs, ys_pad, hlens, ys_lens, reduction="sum") / hs.size(0)
    return criterion


def build_espnet():
    torch.manual_seed(0)
    model = Encoder()
    return Setup(model=model, loader=loader(), alphabet="abcde", optimizer=adam, criterion=espnet_criterion(model))


def build_espnet_detached():
    torch.manual_seed(0)
    model = Encoder(detach_state=True)
    return Setup(model=model, loader=loader(), alphabet="abcde", optimizer=adam, criterion=espnet_criterion(model))


def _dtrb(criterion, stride=1):
    torch.manual_seed(0)
    return Setup(model=Recogniser(stride), loader=loader(), alphabet="abcde", optimizer=adam, criterion=criterion)


def _frames(preds):
    return torch.full((preds.size(0),), preds.size(1), dtype=torch.long)


def build_softmax_dim1():
    def criterion(preds, batch):  # BUG: log_softmax over time, axis 1 of (N, T, C)
        _, text, _, length = batch
        return F.ctc_loss(preds.log_softmax(1).permute(1, 0, 2), text, _frames(preds), length, zero_infinity=True)
    return _dtrb(criterion)


def build_raw_preds():
    def criterion(preds, batch):  # BUG: raw predictions, no log_softmax
        _, text, _, length = batch
        return F.ctc_loss(preds.permute(1, 0, 2), text, _frames(preds), length, zero_infinity=True)
    return _dtrb(criterion)


def build_raw_lengths():
    def criterion(preds, batch):  # BUG: the input widths (16), not the 8 output frames
        _, text, widths, length = batch
        return F.ctc_loss(preds.log_softmax(2).permute(1, 0, 2), text, widths, length, zero_infinity=True)
    return _dtrb(criterion, stride=2)


def build_batch_mean():
    def criterion(preds, batch):  # per-sample losses averaged over the batch, not divided by target lengths
        _, text, _, length = batch
        losses = F.ctc_loss(preds.log_softmax(2).permute(1, 0, 2), text, _frames(preds), length, reduction="none")
        return losses.sum() / preds.size(0)
    return _dtrb(criterion)


def build_minimal():
    # (model, loader) only: the training loop applies log_softmax in its loss, which ctcdoctor does not see
    torch.manual_seed(0)
    return Recogniser(), loader()


def build_no_blank_class():
    # BUG: the head has one class per symbol, none for the blank (num_class = len(character))
    torch.manual_seed(0)
    return Setup(model=Recogniser(classes=5), loader=loader(), alphabet="abcde", optimizer=adam)


def build_espnet_runs_the_model():
    torch.manual_seed(0)
    model = Encoder()

    def criterion(output, batch):  # runs the model again instead of using what it is given
        log_probs, hlens, _ = model(batch[0])
        return F.ctc_loss(log_probs.transpose(0, 1), batch[1], hlens, batch[3])
    return Setup(model=model, loader=loader(), alphabet="abcde", optimizer=adam, criterion=criterion)
