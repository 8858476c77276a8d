"""Time the fused Triton CTC kernel against F.ctc_loss on the same GPU, in the same run.

    python benchmarks/ctc_gpu.py [--reps 50]

For each OCR- or speech-like shape it prints the median time of one loss+gradient computation:
  - triton: ctcdoctor.kernels.triton_ctc.forward_backward (loss, grad and posterior);
  - native: F.ctc_loss forward + backward with cuDNN disabled (PyTorch's own CUDA kernels);
  - cudnn:  F.ctc_loss forward + backward with the inputs cuDNN accepts (blank 0, every input
            length == T, concatenated int32 targets on the CPU, labels <= 256), where eligible;
and the ratios, plus the kernel's achieved bandwidth on the bytes it must move (log_probs read,
grad and posterior written) against a device-to-device copy measured in this run.
Without CUDA it says so and exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.nn.functional as F

# (name, T, N, C, mean label length)
SHAPES = [
    ("ocr-latin", 64, 64, 100, 20),
    ("ocr-long-line", 200, 32, 200, 60),
    ("ocr-cjk", 100, 32, 6000, 20),
    ("speech-chars", 500, 32, 32, 120),
    ("speech-long", 1500, 8, 32, 250),
    ("speech-bpe", 400, 16, 1024, 60),
]


def _time(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def _copy_bandwidth(reps):
    src = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    t = _time(lambda: dst.copy_(src), reps)
    return 2 * src.numel() / t  # read + write


def _inputs(T, N, C, U_mean, gen):
    lp = torch.randn(T, N, C, device="cuda", generator=gen).log_softmax(-1)
    tgt_len = torch.randint(max(1, U_mean // 2), min(256, U_mean * 3 // 2) + 1, (N,), device="cpu")
    tgt_len = tgt_len.clamp(max=(T - 1) // 2)  # keep every sample feasible even with repeats
    targets = torch.randint(1, C, (int(tgt_len.sum()),), dtype=torch.int32)  # no blank (0)
    in_len = torch.full((N,), T, dtype=torch.int32)
    return lp, targets, in_len, tgt_len.to(torch.int32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/ctc_gpu.py needs a CUDA device; none found, nothing measured.")
        return 0
    from ctcdoctor.kernels.triton_ctc import forward_backward

    gen = torch.Generator(device="cuda").manual_seed(0)
    copy_bw = _copy_bandwidth(args.reps)
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
          f"device-to-device copy: {copy_bw / 1e9:.0f} GB/s")
    head = (f"{'shape':14} {'T':>5} {'N':>4} {'C':>5} {'Umax':>4}  {'triton ms':>9} {'native ms':>9} "
            f"{'cudnn ms':>9}  {'nat/tri':>7} {'cud/tri':>7}  {'GB/s':>6} {'%copy':>6}  {'max|dg|':>8}")
    print(head)
    for name, T, N, C, U_mean in SHAPES:
        lp, targets, in_len, tgt_len = _inputs(T, N, C, U_mean, gen)
        tg_cuda, il_cuda, tl_cuda = targets.cuda().long(), in_len.cuda(), tgt_len.cuda()

        def triton_run():
            return forward_backward(lp, tg_cuda, il_cuda, tl_cuda)

        x = lp.detach().clone().requires_grad_()

        def torch_run(tg, il, tl):
            x.grad = None
            F.ctc_loss(x, tg, il, tl, reduction="sum").backward()

        t_tri = _time(triton_run, args.reps)
        with torch.backends.cudnn.flags(enabled=False):
            t_nat = _time(lambda: torch_run(tg_cuda, il_cuda.long(), tl_cuda.long()), args.reps)
            grad_ref = x.grad.clone()
        cudnn_ok = torch.backends.cudnn.is_available() and int(tgt_len.max()) <= 256
        t_cud = _time(lambda: torch_run(targets, in_len, tgt_len), args.reps) if cudnn_ok else float("nan")
        _, grad, _ = triton_run()
        err = (grad - grad_ref).abs().max().item()
        # Bytes that must move: log_probs read once, grad and posterior written once.
        moved = lp.numel() * (lp.element_size() + grad.element_size() + 4)
        bw = moved / t_tri
        print(f"{name:14} {T:5} {N:4} {C:5} {int(tgt_len.max()):4}  {t_tri * 1e3:9.3f} {t_nat * 1e3:9.3f} "
              f"{t_cud * 1e3:9.3f}  {t_nat / t_tri:7.2f} {t_cud / t_tri:7.2f}  {bw / 1e9:6.0f} "
              f"{100 * bw / copy_bw:5.1f}%  {err:8.1e}")
    print("ratios > 1: the Triton kernel is faster. The Triton time includes the posterior, which F.ctc_loss "
          "does not produce; PyTorch's times include autograd overhead.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
