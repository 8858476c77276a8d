"""My set-up 1: a crnn.pytorch-style CRNN (images resized to 32x100) where the author
used square MaxPool2d(2, 2) in all four pooling layers, like a VGG classifier.
Width 100 -> 50 -> 25 -> 12 -> 6 frames, and words have up to 8 letters (+ repeats).
Loss written the classic way: preds_size = [T] * batch, nn.CTCLoss(zero_infinity=True).
Output lengths NOT given to ctcdoctor (the classic code has none: all images are 100 px).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ctcdoctor import Setup
from ctcdoctor.toydata import WordImageDataset

alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"


class strLabelConverter:
    def __init__(self, alphabet):
        self.dict = {c: i + 1 for i, c in enumerate(alphabet)}  # 0 is blank

    def encode(self, texts):
        length = [len(t) for t in texts]
        flat = [self.dict[c] for t in texts for c in t]
        return torch.IntTensor(flat), torch.IntTensor(length)


class ResizedWords(Dataset):
    def __init__(self, n=64):
        self.inner = WordImageDataset(n=n, seed=3)
        self.texts = [self.inner.words[i] if hasattr(self.inner, "words") else None for i in range(n)]

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        img, target = self.inner[i]
        img = F.interpolate(img[None], size=(32, 100), mode="bilinear", align_corners=False)[0]
        text = "".join(chr(ord("a") + int(t) - 1) for t in target)
        return img, text


converter = strLabelConverter(alphabet)


def collate(items):
    imgs = torch.stack([it[0] for it in items])
    text, length = converter.encode([it[1] for it in items])
    widths = torch.full((len(items),), 100, dtype=torch.long)
    return imgs, text, widths, length


class BidirectionalLSTM(nn.Module):
    def __init__(self, nIn, nHidden, nOut):
        super().__init__()
        self.rnn = nn.LSTM(nIn, nHidden, bidirectional=True)
        self.embedding = nn.Linear(nHidden * 2, nOut)

    def forward(self, input):
        recurrent, _ = self.rnn(input)
        T, b, h = recurrent.size()
        output = self.embedding(recurrent.view(T * b, h))
        return output.view(T, b, -1)


class CRNN(nn.Module):
    def __init__(self, imgH=32, nc=1, nclass=len(alphabet) + 1, nh=128):  # noqa: B008 - the user's code, as written
        super().__init__()
        cnn = nn.Sequential()
        chans = [nc, 64, 128, 256, 256]
        for i in range(4):
            cnn.add_module(f"conv{i}", nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1))
            cnn.add_module(f"bn{i}", nn.BatchNorm2d(chans[i + 1]))
            cnn.add_module(f"relu{i}", nn.ReLU(True))
            cnn.add_module(f"pooling{i}", nn.MaxPool2d(2, 2))  # BUG: also halves the width every time
        cnn.add_module("conv4", nn.Conv2d(256, 256, (2, 1), 1, 0))  # height 2 -> 1
        self.cnn = cnn
        self.rnn = nn.Sequential(BidirectionalLSTM(256, nh, nh), BidirectionalLSTM(nh, nh, nclass))

    def forward(self, input):
        conv = self.cnn(input)
        b, c, h, w = conv.size()
        assert h == 1, "the height of conv must be 1"
        conv = conv.squeeze(2).permute(2, 0, 1)  # [w, b, c]
        output = self.rnn(conv)
        return F.log_softmax(output, dim=2)


ctc = nn.CTCLoss(zero_infinity=True)


def criterion(preds, batch):
    _, text, _, length = batch
    preds_size = torch.IntTensor([preds.size(0)] * preds.size(1))
    return ctc(preds, text, preds_size, length)


def build():
    data = ResizedWords(64)
    loader = DataLoader(data, batch_size=16, shuffle=True, collate_fn=collate)
    return Setup(model=CRNN(), loader=loader, blank=0, alphabet=alphabet, criterion=criterion)
