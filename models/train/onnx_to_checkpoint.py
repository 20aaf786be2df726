#!/usr/bin/python3
"""Turn the shipped ONNX model back into a training checkpoint, to fine-tune it.

The checkpoints live in the git-ignored work/ folder, so a fresh checkout has only
models/unface-seg.onnx. export_onnx.py names every initializer after its parameter in net.py
(prefixed "m." by the softmax wrapper), so the weights map back one to one, the up-sampling
convolutions' after a reshape.

Usage: /usr/bin/python3 models/train/onnx_to_checkpoint.py [--onnx models/unface-seg.onnx] [--out models/train/work/ckpt_shipped.pt]
"""
import argparse
import os
import sys

import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from net import UNet3D  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default=os.path.join(HERE, "..", "unface-seg.onnx"))
    ap.add_argument("--out", default=os.path.join(HERE, "work", "ckpt_shipped.pt"))
    args = ap.parse_args()
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(args.onnx).graph.initializer}
    # export_onnx.py writes each up-sampling ConvTranspose3d as a 1x1x1 convolution (see
    # ConvTransposeAsShuffle there): back to [in, out, 2, 2, 2] and one bias per output channel.
    for name in [k for k in weights if k.startswith("m.up.") and k.endswith(".conv.weight")]:
        prefix = name[: -len("conv.weight")]
        w = weights.pop(name)
        out8, channels_in = w.shape[:2]
        weights[prefix + "weight"] = w.reshape(out8 // 8, 2, 2, 2, channels_in).transpose(4, 0, 1, 2, 3)
        weights[prefix + "bias"] = weights.pop(prefix + "conv.bias")[::8]
    state = {k[2:]: torch.from_numpy(v.copy()) for k, v in weights.items() if k.startswith("m.")}
    try:
        model = UNet3D.from_state(state)
    except (KeyError, RuntimeError) as error:
        sys.exit(f"{args.onnx}: its initializers are not a net.py network as export_onnx.py writes it ({error})")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    torch.save(dict(model=model.state_dict(), iter=0, source=os.path.abspath(args.onnx)), args.out)
    print(f"wrote {args.out}: {len(state)} tensors from {args.onnx}")


if __name__ == "__main__":
    main()
