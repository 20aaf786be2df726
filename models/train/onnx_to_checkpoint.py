#!/usr/bin/python3
"""Turn the shipped ONNX model back into a training checkpoint, to fine-tune it.

The checkpoints live in the git-ignored work/ folder, so a fresh checkout has only
models/unface-seg.onnx. export_onnx.py names every initializer after its parameter in net.py
(prefixed "m." by the softmax wrapper), so the weights map back one to one.

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
    model = UNet3D()
    state = model.state_dict()
    missing = [k for k in state if "m." + k not in weights]
    if missing:
        sys.exit(f"{args.onnx}: no initializer for {', '.join(missing)}: not exported by export_onnx.py from net.py")
    model.load_state_dict({k: torch.from_numpy(weights["m." + k].copy()) for k in state})
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    torch.save(dict(model=model.state_dict(), iter=0, source=os.path.abspath(args.onnx)), args.out)
    print(f"wrote {args.out}: {len(state)} tensors from {args.onnx}")


if __name__ == "__main__":
    main()
