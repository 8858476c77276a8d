"""deepspeech.pytorch's pattern in small (trial-pub): the model ends with `InferenceBatchSoftmax`, a softmax that runs
only in eval mode, and the training step applies log_softmax itself, with CTCLoss(reduction="sum",
zero_infinity=True). Healthy: training sees logits and normalises them; decoding sees probabilities."""
import torch
import torch.nn.functional as F
from torch import nn

from ctcdoctor import Setup


class InferenceBatchSoftmax(nn.Module):  # deepspeech_pytorch/model.py, verbatim
    def forward(self, input_):
        if not self.training:
            return F.softmax(input_, dim=-1)
        else:
            return input_


class SpeechNet(nn.Module):
    """(N, F, T) features -> Conv1d + BatchNorm + GRU + Linear -> (N, T, C), then the eval-only softmax."""

    def __init__(self, features=8, classes=6):
        super().__init__()
        self.conv = nn.Conv1d(features, 32, 3, padding=1)
        self.bn = nn.BatchNorm1d(32)
        self.rnn = nn.GRU(32, 32, batch_first=True)
        self.fc = nn.Linear(32, classes)
        self.inference_softmax = InferenceBatchSoftmax()

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))).transpose(1, 2)
        x, _ = self.rnn(x)
        return self.inference_softmax(self.fc(x))


def batches(labels=4, frames=20, n=16, seed=0, long=0):
    """Batches of 8; every second sample has `long` labels instead of `labels` when `long` is given."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n // 8):
        x = torch.randn(8, 8, frames, generator=g)
        y = torch.randint(1, 6, (8, max(labels, long)), generator=g)
        y[:, 1] = y[:, 0] % 5 + 1  # no adjacent repeat in the first two labels
        lengths = torch.tensor([long if long and i % 2 else labels for i in range(8)])
        out.append((x, y, torch.full((8,), frames), lengths))
    return out


CTC = nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)


def training_step_loss(output, batch):  # DeepSpeech.training_step: log_softmax, then CTCLoss
    _, targets, input_lengths, target_lengths = batch
    return CTC(output.transpose(0, 1).log_softmax(-1), targets, input_lengths, target_lengths)


def raw_into_ctc(output, batch):  # BUG: the logits training sees reach the loss without log_softmax
    _, targets, input_lengths, target_lengths = batch
    return CTC(output.transpose(0, 1), targets, input_lengths, target_lengths)


def make(model=None, criterion=training_step_loss, **data):
    torch.manual_seed(0)
    return Setup(model=model or SpeechNet(), loader=batches(**data), blank=0, alphabet="abcde", criterion=criterion,
                 optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))


def build():
    return make()


def build_too_long():
    # Half the transcripts are longer than the 20 output frames: zero_infinity=True hides them (CTC031).
    return make(long=24)


def build_raw_into_ctc():
    return make(criterion=raw_into_ctc)


class Uncopyable(SpeechNet):
    """A model that refuses deepcopy: the train-mode forward then runs on the model itself, its state restored."""

    def __deepcopy__(self, memo):
        raise TypeError("cannot deepcopy this model")


def build_uncopyable():
    return make(model=Uncopyable())


class TrainingSoftmax(nn.Module):
    """The reverse: softmax in train mode only (eval-mode decoding sees logits)."""

    def forward(self, input_):
        return F.softmax(input_, dim=-1) if self.training else input_


def probabilities_into_ctc(output, batch):  # BUG: the loss reads the train-mode probabilities as log-probabilities
    _, targets, input_lengths, target_lengths = batch
    return CTC(output.transpose(0, 1), targets, input_lengths, target_lengths)


def build_softmax_in_training():
    model = SpeechNet()
    model.inference_softmax = TrainingSoftmax()
    return make(model=model, criterion=probabilities_into_ctc)
