#!/usr/bin/python3
"""Export a trained checkpoint to ONNX (opset 17).

Input  "input": float32 [1, 1, 96, 96, 96], the model grid (RAS voxel order, 2.5 mm, intensities
               in [0, 1]; see models/README.md). Axis order of the tensor: [N, C, x(R), y(A), z(S)].
Output "probs": float32 [1, 5, 96, 96, 96], softmax probabilities of background, head, face,
               ears, brain (sum to 1 over axis 1).

Usage: /usr/bin/python3 models/train/export_onnx.py [--ckpt models/train/work/ckpt_best.pt]
                                                    [--out models/unface-seg.onnx]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from net import UNet3D  # noqa: E402
from common import GRID  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class ConvTransposeAsShuffle(torch.nn.Module):
    """A ConvTranspose3d of kernel 2 and stride 2 (net.py's up-sampling), computed as a 1x1x1
    convolution to 8 channels per output channel, one per offset in the 2x2x2 block, and a
    reshape and transpose that put each in its place. The same numbers: onnxruntime runs a
    ConvTranspose on this grid as a general col2im, 54 ms of the finest one alone on one thread,
    and this in about half (model step 353 -> 323 ms). onnx_to_checkpoint.py inverts it."""

    def __init__(self, up):
        super().__init__()
        weight = up.weight.detach()  # [in, out, 2, 2, 2]
        channels_in, self.channels_out = weight.shape[:2]
        self.conv = torch.nn.Conv3d(channels_in, self.channels_out * 8, 1)
        # output channel o * 8 + 4a + 2b + c holds the weights of offset (a, b, c)
        self.conv.weight.data = weight.permute(1, 2, 3, 4, 0).reshape(self.channels_out * 8, channels_in, 1, 1, 1).clone()
        self.conv.bias.data = up.bias.detach().repeat_interleave(8).clone()

    def forward(self, x):
        n, _, d, h, w = x.shape
        y = self.conv(x).view(n, self.channels_out, 2, 2, 2, d, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
        return y.reshape(n, self.channels_out, 2 * d, 2 * h, 2 * w)


class WithSoftmax(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        # The softmax written out (max, subtract, exp, sum, divide) rather than torch.softmax:
        # onnxruntime runs a Softmax node over axis 1 of a 5 x 96^3 tensor by transposing it and
        # taking 96^3 softmaxes of 5 values, 71 ms of a 420 ms model step on one thread; the
        # element-wise ops and reductions over axis 1 take a few ms. Same probabilities.
        logits = self.m(x)
        e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
        return e / e.sum(dim=1, keepdim=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "work", "ckpt_best.pt"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "unface-seg.onnx"))
    args = ap.parse_args()
    ck = torch.load(args.ckpt, map_location="cpu")
    m = UNet3D.from_state(ck["model"])
    m.eval()
    x = torch.rand(1, 1, GRID, GRID, GRID)
    with torch.no_grad():
        as_trained = WithSoftmax(m)(x)
        for i, up in enumerate(m.up):
            m.up[i] = ConvTransposeAsShuffle(up)
    w = WithSoftmax(m).eval()
    torch.onnx.export(w, x, args.out, opset_version=17, input_names=["input"], output_names=["probs"],
                      do_constant_folding=True)
    with torch.no_grad():
        ref = w(x)
    difference = float((ref - as_trained).abs().max())
    if difference > 1e-5:
        sys.exit(f"the exported form differs from the trained network by {difference}")
    # reference input/output for check_onnx.mjs (raw little-endian float32)
    x.numpy().astype("<f4").tofile(os.path.join(HERE, "work", "onnx_check_x.bin"))
    ref.numpy().astype("<f4").tofile(os.path.join(HERE, "work", "onnx_check_probs.bin"))
    print(f"wrote {args.out} ({os.path.getsize(args.out)/1e6:.2f} MB) from {args.ckpt} (iter {ck.get('iter')})")


if __name__ == "__main__":
    main()
