"""Train the bundled OCR example (examples/ocr_crnn.py) with PyTorch Lightning and the ctcdoctor callback.

Run:  python examples/lightning_ocr.py                     # healthy
      python examples/lightning_ocr.py --lr-mistake        # Adam at lr 2.0: stopped on an error verdict
      python examples/lightning_ocr.py --steps 600 --every 25 --out runs/lightning

The LightningModule follows the `build()` batch protocol (its train loader yields
`(images, targets, widths, target_lengths)`) and its `forward(images)` returns the CTC output,
so the callback needs only what a `Setup` would say: the blank, the alphabet and the output
lengths. Before the first step it runs `ctcdoctor check` on the module and a train batch; then
every `--every` steps it decodes the training batch, prints CER, the blank ratio and a few
decodes, and judges the run so far; an error verdict sets `trainer.should_stop`.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/: ocr_crnn

from ocr_crnn import CRNN, output_lengths

from ctcdoctor.integrations.lightning import CTCDoctorCallback
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class OCRModule(pl.LightningModule):
    """The CRNN with warm-up and cosine decay; `forward(images)` returns (T, N, C) log-probabilities."""

    def __init__(self, peak_lr: float = 2e-3, steps: int = 600, warmup: int = 30) -> None:
        super().__init__()
        self.model = CRNN()
        self.peak_lr, self.steps, self.warmup = peak_lr, steps, warmup

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch, batch_index):
        images, targets, widths, lengths = batch
        loss = F.ctc_loss(self(images), targets, output_lengths(widths), lengths)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.peak_lr)

        def factor(step: int) -> float:
            if step < self.warmup:
                return (step + 1) / self.warmup
            progress = (step - self.warmup) / max(1, self.steps - self.warmup)
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lr-mistake", action="store_true", help="peak learning rate 2.0 instead of 2e-3 (a lost e-3)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--patience", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("lightning_run"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = WordImageDataset(n=2048, seed=1)
    loader = DataLoader(data, batch_size=16, shuffle=True, collate_fn=data.collate, generator=torch.Generator().manual_seed(0))
    callback = CTCDoctorCallback(report_path=args.out / "report.json", every=args.every, blank=0, alphabet=ALPHABET,
                                 output_lengths=output_lengths, patience=args.patience, reduction="mean",
                                 metrics_path=args.out / "metrics.jsonl", plot_path=args.out / "monitor.png")
    trainer = pl.Trainer(max_steps=args.steps, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(OCRModule(2.0 if args.lr_mistake else 2e-3, args.steps), loader)
    print(f"ran {trainer.global_step} of {args.steps} steps; files in {args.out}/")
    return 1 if any(found.severity.value == "error" for found in callback.report.findings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
