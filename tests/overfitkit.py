"""Tiny CTC set-ups for the overfit tests, written to a temp dir as a user module (one planted bug per build).

A per-frame MLP over random features memorises one sample in about 100 Adam steps at 1e-2, a few
milliseconds each, so every behaviour of `ctcdoctor overfit` can be shown on CPU in seconds.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

USER_MODULE = textwrap.dedent(
    '''
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from ctcdoctor import Setup

    class FrameMLP(nn.Module):
        def __init__(self, features=8, classes=6, stride=1):
            super().__init__()
            self.stride = stride
            self.body = nn.Sequential(nn.Linear(features, 32), nn.Tanh())
            self.head = nn.Linear(32, classes)

        def scores(self, x):                       # x: (N, T, F)
            return self.head(self.body(x[:, :: self.stride]))

        def forward(self, x):
            return self.scores(x).log_softmax(-1)   # (N, T, C)

    def collate(items):
        xs, ys = zip(*items)
        return torch.stack(xs), torch.stack(ys), torch.full((len(xs),), xs[0].shape[0]), torch.full((len(xs),), ys[0].shape[0])

    def data(frames=16, labels=4, n=8):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, frames, 8, generator=g)
        y = torch.randint(1, 6, (n, labels), generator=g)
        y[:, 1] = y[:, 0] % 5 + 1                   # no adjacent repeats in the first two labels
        return TensorDataset(x, y)

    def loader(**kwargs):
        dataset = data(**kwargs)
        return DataLoader(dataset, batch_size=4, collate_fn=collate)

    def adam(lr):
        return lambda p: torch.optim.Adam(p, lr=lr)

    def build():
        torch.manual_seed(0)
        return Setup(model=FrameMLP(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2))

    def build_infeasible():
        # BUG: the model keeps every 8th frame: 2 frames for 4 labels.
        torch.manual_seed(0)
        return Setup(model=FrameMLP(stride=8), loader=loader(), alphabet="abcde")

    def build_huge_lr():
        torch.manual_seed(0)
        return Setup(model=FrameMLP(), loader=loader(), alphabet="abcde",
                     optimizer=lambda p: torch.optim.SGD(p, lr=1e4))

    def build_plain_batches():
        # Not a DataLoader: a list of (inputs, targets, input_lengths, target_lengths) batches.
        torch.manual_seed(0)
        batches = list(loader())
        return Setup(model=FrameMLP(), loader=batches, alphabet="abcde", optimizer=adam(1e-2))

    def ctc_criterion(output, batch):
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output.transpose(0, 1), targets, input_lengths, target_lengths)

    def build_criterion_offset():
        # The user's own loss: CTC plus 100, so a trained loss above 100 proves it was the one trained.
        torch.manual_seed(0)
        return Setup(model=FrameMLP(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2),
                     criterion=lambda output, batch: ctc_criterion(output, batch) + 100.0)

    class SoftmaxMLP(FrameMLP):
        def forward(self, x):
            return self.scores(x).softmax(-1)

    def build_softmax_own_loss():
        # Keras's recipe: probabilities out, log in the loss.
        torch.manual_seed(0)
        return Setup(model=SoftmaxMLP(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2),
                     criterion=lambda output, batch: ctc_criterion(torch.log(output + 1e-7), batch))

    def build_softmax_into_ctc():
        # BUG: probabilities handed to F.ctc_loss, which expects log-probabilities: the loss goes negative.
        torch.manual_seed(0)
        return Setup(model=SoftmaxMLP(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2), criterion=ctc_criterion)

    from collections import namedtuple
    from dataclasses import dataclass

    @dataclass
    class ModelOutput:
        logits: torch.Tensor
        hidden: torch.Tensor

    Scores = namedtuple("Scores", ["logits", "features"])

    class DataclassOut(FrameMLP):
        """Returns an object with .logits, as a transformers ModelOutput (a plain dataclass here)."""
        def forward(self, x):
            return ModelOutput(logits=super().forward(x), hidden=x)

    class NamedTupleOut(FrameMLP):
        def forward(self, x):
            return Scores(super().forward(x), x)

    def build_dataclass_output():
        torch.manual_seed(0)
        return Setup(model=DataclassOut(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2))

    def build_namedtuple_output_own_loss():
        # The user's loss reads .logits of what the model returned, as check's criterion audit passes it.
        torch.manual_seed(0)
        return Setup(model=NamedTupleOut(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2),
                     criterion=lambda output, batch: ctc_criterion(output.logits, batch))

    def build_loss_runs_the_model():
        # A loss that ignores the output it is given and runs the (original) model itself.
        torch.manual_seed(0)
        model = FrameMLP()
        return Setup(model=model, loader=loader(), alphabet="abcde", optimizer=adam(1e-2),
                     criterion=lambda output, batch: ctc_criterion(model(batch[0]), batch))

    def build_loss_raises():
        def criterion(output, batch):
            raise ValueError("my loss is broken")
        torch.manual_seed(0)
        return Setup(model=FrameMLP(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2), criterion=criterion)

    class Masked(FrameMLP):
        """SpecAugment-like: in training mode, the features of a quarter of the frames are zeroed."""
        mask_time_prob = 0.25

        def forward(self, x):
            if self.training:
                keep = (torch.rand(x.shape[0], x.shape[1], 1) >= self.mask_time_prob).float()
                x = x * keep
            return super().forward(x)

    def build_masked():
        torch.manual_seed(0)
        return Setup(model=Masked(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2))

    class EvalReversed(FrameMLP):
        """A bug that shows in eval mode only: the eval branch reads the frames backwards."""
        def forward(self, x):
            return super().forward(x if self.training else x.flip(1))

    def build_eval_reversed():
        torch.manual_seed(0)
        return Setup(model=EvalReversed(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2))

    class DeadHead(FrameMLP):
        """A ReLU after the output layer whose scores all start below 0: every frame uniform, no gradient."""
        def __init__(self):
            super().__init__()
            with torch.no_grad():
                self.head.bias.fill_(-10.0)

        def forward(self, x):
            return torch.relu(self.scores(x)).log_softmax(-1)

    def build_dead_head():
        torch.manual_seed(0)
        return Setup(model=DeadHead(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2))

    class Slow(nn.Module):
        """Wraps a model and sleeps in every training-mode forward: a model slow enough for --timeout to land in
        training (the static checks, in eval mode, stay fast)."""
        def __init__(self, model, sleep=0.02):
            super().__init__()
            self.model, self.sleep = model, sleep

        def forward(self, x):
            import time
            if self.training:
                time.sleep(self.sleep)
            return self.model(x)

    def build_slow_dead_head():
        torch.manual_seed(0)
        return Setup(model=Slow(DeadHead(), sleep=0.1), loader=loader(), alphabet="abcde", optimizer=adam(1e-2))

    def build_slow_learner():
        # A healthy model at a small learning rate: the loss still falls for hundreds of steps.
        torch.manual_seed(0)
        return Setup(model=Slow(FrameMLP()), loader=loader(), alphabet="abcde", optimizer=adam(1e-4))

    def build_slow_to_load():
        import time
        time.sleep(30)
        return build()

    def build_unseeded():
        # build() leaves the model's initialisation to the global random state: --seed decides it.
        return Setup(model=FrameMLP(), loader=loader(), alphabet="abcde", optimizer=adam(1e-2))

    def build_none_optimizer():
        torch.manual_seed(0)
        return Setup(model=FrameMLP(), loader=loader(), alphabet="abcde", optimizer=lambda p: None)

    def build_infinite():
        import itertools
        torch.manual_seed(0)
        return Setup(model=FrameMLP(), loader=itertools.cycle(list(loader())), alphabet="abcde", optimizer=adam(1e-2))
    '''
)


def write_user_module(folder: Path, name: str = "tinyctc.py") -> Path:
    path = folder / name
    path.write_text(USER_MODULE)
    return path
