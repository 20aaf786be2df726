"""Small 3D U-Net for the unface face/skull-surface segmentation (CPU friendly).

Input  [N, 1, 96, 96, 96] float32, intensities in [0, 1] (see common.normalise).
Output [N, 5, 96, 96, 96] float32 logits for classes background, head, face, ears, brain
(export_onnx.py can append a softmax).

Full resolution carries only 8 channels and one 3x3x3 conv on each side (it dominates the cost), as
does the 48^3 level; the coarser levels, which are cheap, have two. Skips are added, not
concatenated. Five levels (96, 48, 24, 12, 6) give the bottom of the
network a view of the whole head, needed to tell face from back of head in any orientation.
"""
import torch
import torch.nn as nn


def block(cin, cout, convs=1):
    layers = []
    for i in range(convs):
        layers += [nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
                   nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.1, inplace=True)]
    return nn.Sequential(*layers)


class UNet3D(nn.Module):
    def __init__(self, chans=(8, 16, 32, 48, 64), n_classes=5):
        super().__init__()
        c = chans
        self.enc0 = block(1, c[0])
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        for i in range(1, len(c)):
            self.down.append(nn.Sequential(nn.Conv3d(c[i - 1], c[i], 2, stride=2, bias=False),
                                           nn.InstanceNorm3d(c[i], affine=True),
                                           nn.LeakyReLU(0.1, inplace=True)))
            self.enc.append(block(c[i], c[i], 2 if i >= 2 else 1))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(c) - 1, 0, -1):
            self.up.append(nn.ConvTranspose3d(c[i], c[i - 1], 2, stride=2))
            self.dec.append(block(c[i - 1], c[i - 1], 2 if i - 1 >= 2 else 1))
        self.head = nn.Conv3d(c[0], n_classes, 1)

    def forward(self, x):
        x = self.enc0(x)
        skips = [x]
        for d, e in zip(self.down, self.enc):
            x = e(d(x))
            skips.append(x)
        skips.pop()
        for u, dblk in zip(self.up, self.dec):
            x = dblk(u(x) + skips.pop())
        return self.head(x)
