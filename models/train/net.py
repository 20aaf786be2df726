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

    @classmethod
    def from_state(cls, state):
        """The network whose widths the weights in state have (the default's or widen_finest's)."""
        chans = (state["enc0.0.weight"].shape[0],) + tuple(
            state[f"down.{i}.0.weight"].shape[0] for i in range(len([k for k in state if k.startswith("down.") and k.endswith(".0.weight")])))
        model = cls(chans)
        model.load_state_dict(state)
        return model

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


def widen_finest(state, width, noise=1e-2, seed=0):
    """The same function with `width` channels at full resolution (Net2WiderNet): each new channel
    copies an old one, and whatever reads both shares its old weight between them. Instance norm
    treats copies alike, and the skip sum adds copy to copy, so the output is unchanged but for a
    little noise on the copies, which lets them learn apart. For the finest level's capacity
    (run 6, models/README.md) without starting from nothing."""
    state = {k: v.clone() for k, v in state.items()}
    old = state["enc0.0.weight"].shape[0]
    g = torch.Generator().manual_seed(seed)
    source = torch.cat([torch.arange(old), torch.randint(0, old, (width - old,), generator=g)])
    copies = torch.bincount(source, minlength=old).float()
    share = 1.0 / copies[source]
    last = len([k for k in state if k.startswith("up.") and k.endswith(".weight")]) - 1

    def rows(name, dim):
        w = state[name].index_select(dim, source)
        extra = [slice(None)] * w.dim()
        extra[dim] = slice(old, None)
        w[tuple(extra)] += noise * w[tuple(extra)].std() * torch.randn(w[tuple(extra)].shape, generator=g)
        state[name] = w

    def columns(name, dim):
        shape = [1] * state[name].dim()
        shape[dim] = width
        state[name] = state[name].index_select(dim, source) * share.view(shape)

    for name in ("enc0.0.weight", f"dec.{last}.0.weight"):
        rows(name, 0)
    for name in ("enc0.1.weight", "enc0.1.bias", f"dec.{last}.1.weight", f"dec.{last}.1.bias", f"up.{last}.bias"):
        state[name] = state[name][source]
    rows(f"up.{last}.weight", 1)
    columns("down.0.0.weight", 1)
    columns(f"dec.{last}.0.weight", 1)
    columns("head.weight", 1)
    return state


def widen(state, chans, seed=0):
    """The same function with more channels per level (`chans`, each at least the old width): old
    weights are kept, every weight from a new channel into an old one is zero, and the rest is a
    fresh initialisation. Old channels then compute exactly what they did (instance norm is per
    channel, skips add old to old), while the zero weights still receive gradients, so the new
    channels start to matter as training moves them. Gives the cheap coarse levels more capacity
    (run 12, models/README.md) without starting from nothing."""
    torch.manual_seed(seed)
    fresh = UNet3D(tuple(chans)).state_dict()
    out = {}
    for name, new in fresh.items():
        old = state[name]
        new = new.clone()
        new[tuple(slice(0, s) for s in old.shape)] = old
        if new.dim() == 5 and new.shape != old.shape:
            # Conv3d weights are [out, in, ...]; ConvTranspose3d ("up.*") weights are [in, out, ...]
            o, i = (1, 0) if name.startswith("up.") else (0, 1)
            index = [slice(None)] * 5
            index[o] = slice(0, old.shape[o])
            index[i] = slice(old.shape[i], None)
            new[tuple(index)] = 0
        out[name] = new
    return out
