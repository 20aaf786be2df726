#!/usr/bin/python3
"""How much the network's face depends on the head's pitch (nodding forward or back).

1. Each validation head's store grid is rotated about the left-right axis by -30..30 degrees, the
   central 96^3 crop goes through the network, and the probabilities are rotated back: face Dice
   against the reference at each pitch. A network indifferent to pose would give the same Dice
   at every angle; the rotation training covers is 30 degrees.
2. The head's pitch as the network sees it: the elevation of the longest principal axis of the
   predicted brain (grid voxels, canonical input), on every head.
3. Rotating each validation head so that this elevation equals the training heads' mean before
   the network (a pose normalisation a runtime could do with a second pass): face Dice.

Usage: /usr/bin/python3 models/train/pose_sensitivity.py --ckpt models/train/work/ckpt_shipped.pt
"""
import argparse
import json
import os
import sys

import numpy as np
import nibabel as nib
import torch
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from net import UNet3D  # noqa: E402
from common import GRID, STORE, normalise  # noqa: E402
from evaluate import dice  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.join(HERE, "work", "labels")
CROP = (slice((STORE - GRID) // 2, (STORE - GRID) // 2 + GRID),) * 3


def pitched(a, degrees, order):
    """`a` rotated about the x (left-right) axis through the grid centre."""
    t = np.radians(degrees)
    r = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    c = (np.array(a.shape) - 1) / 2.0
    return ndi.affine_transform(a, r, offset=c - r @ c, order=order, mode="nearest")


class Probe:
    def __init__(self, ckpt):
        self.model = UNet3D.from_state(torch.load(ckpt, map_location="cpu")["model"]).eval()

    def probs(self, store, degrees=0.0):
        """Class probabilities on the canonical crop, the head pitched by `degrees` for the network."""
        x = normalise((pitched(store, degrees, 1) if degrees else store)[CROP])
        with torch.no_grad():
            p = torch.softmax(self.model(torch.from_numpy(x)[None, None]), 1)[0].numpy()
        return np.stack([pitched(q, -degrees, 1) for q in p]) if degrees else p


def brain_pitch(probs):
    """Elevation in degrees of the predicted brain's longest principal axis (+: front up)."""
    b = np.argwhere(probs.argmax(0) == 4).astype(float)
    w, v = np.linalg.eigh(np.cov((b - b.mean(0)).T))
    a = v[:, np.argmax(w)]
    a = -a if a[1] < 0 else a
    return float(np.degrees(np.arctan2(a[2], a[1])))


def load(hid):
    img = np.asanyarray(nib.load(os.path.join(LAB, hid + "_img.nii.gz")).dataobj).astype(np.float32)
    ref = np.asanyarray(nib.load(os.path.join(LAB, hid + "_lab.nii.gz")).dataobj)[CROP] == 2
    return img, ref


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    probe = Probe(args.ckpt)
    split = json.load(open(os.path.join(HERE, "split.json")))

    print("1. face Dice with the head pitched by ... degrees")
    for hid in split["val"]:
        img, ref = load(hid)
        row = {d: round(dice(probe.probs(img, d).argmax(0) == 2, ref), 3) for d in range(-30, 31, 10)}
        print(hid, json.dumps(row), flush=True)

    print("\n2. brain pitch (degrees)")
    pitch = {}
    for hid in split["train"] + split["val"]:
        pitch[hid] = brain_pitch(probe.probs(load(hid)[0]))
        print(f"{hid:22s} {'val' if hid in split['val'] else 'train':5s} {pitch[hid]:6.1f}", flush=True)
    standard = float(np.mean([pitch[h] for h in split["train"]]))
    print(f"training mean {standard:.1f}")

    print("\n3. face Dice, canonical and with the brain pitch set to the training mean")
    rows = []
    for hid in split["val"]:
        img, ref = load(hid)
        turn = pitch[hid] - standard
        rows.append((dice(probe.probs(img).argmax(0) == 2, ref), dice(probe.probs(img, turn).argmax(0) == 2, ref)))
        print(f"{hid:22s} turned {turn:6.1f}  {rows[-1][0]:.3f} -> {rows[-1][1]:.3f}", flush=True)
    print(f"{'MEAN':22s} {'':13s} {np.mean([r[0] for r in rows]):.3f} -> {np.mean([r[1] for r in rows]):.3f}")


if __name__ == "__main__":
    main()
