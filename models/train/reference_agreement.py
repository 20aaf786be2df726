#!/usr/bin/python3
"""How far the registration-derived reference itself can be trusted, and how far the network is
from it.

Each validation head's reference face comes from one registration route: the atlas
(T1_head_ext2) registered to the head (make_labels.py). This script builds independent routes:
the labels of other, already labelled heads ("via" heads, training heads) registered to the same
head with the same elastix settings (make_labels.register_atlas), clipped by the same brain guard.
It prints, per head:
  * the face Dice between every pair of routes (the direct one included): how well two
    registrations agree on where the face is;
  * each route against the majority of all routes;
  * the network's face Dice against each route and against the majority.
If the routes agree far better with each other than the network does with any of them, the gap to
the Dice target is the network's, not noise in the reference.

Registrations are cached in work/agreement/<head>__<via>.npz (about 20-35 s each on 2 cores).

Usage: /usr/bin/python3 models/train/reference_agreement.py --ckpt models/train/work/ckpt_shipped.pt
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import nibabel as nib
import torch
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_labels  # noqa: E402
from net import UNet3D  # noqa: E402
from common import GRID, STORE, normalise  # noqa: E402
from evaluate import dice  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "work", "agreement")
VIA = ["IXI012-HH-1211_T1", "IXI162-HH-1548_T1", "IXI213-HH-1642_T1", "IXI239-HH-2296_T1", "IXI252-HH-1693_T1"]


def load(hid):
    img = nib.load(os.path.join(make_labels.LAB, hid + "_img.nii.gz"))
    lab = np.asanyarray(nib.load(os.path.join(make_labels.LAB, hid + "_lab.nii.gz")).dataobj)
    return dict(img=np.asanyarray(img.dataobj).astype(np.float32), affine=img.affine, lab=lab)


def routed_face(target, hid, via, threads):
    """The face of `via`'s labels registered onto `target` (the head `hid`), as make_labels would
    label it: within the head, outside the brain guard."""
    path = os.path.join(CACHE, f"{hid}__{via}.npz")
    if not os.path.exists(path):
        tmp = tempfile.mkdtemp(prefix="unface_agree_")
        try:
            w = make_labels.register_atlas(target["img"], target["lab"] > 0, load(via), target["affine"], tmp,
                                           threads, os.path.join(CACHE, "elastix.log"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        np.savez_compressed(path, **{k: v.astype(np.uint8) for k, v in w.items()})
    face = np.load(path)["face"] > 0
    lab = target["lab"]
    guard = ndi.binary_dilation(lab == 4, iterations=2)
    return face & (lab > 0) & ~guard


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    torch.set_num_threads(args.threads)
    model = UNet3D.from_state(torch.load(args.ckpt, map_location="cpu")["model"]).eval()
    split = json.load(open(os.path.join(HERE, "split.json")))
    c0 = (STORE - GRID) // 2
    sl = (slice(c0, c0 + GRID),) * 3
    rows = []
    for hid in split["val"]:
        target = load(hid)
        faces = {"direct": target["lab"] == 2}
        faces.update({v: routed_face(target, hid, v, args.threads) for v in VIA})
        faces = {k: f[sl] for k, f in faces.items()}
        majority = np.mean([f.astype(np.float32) for f in faces.values()], 0) > 0.5
        with torch.no_grad():
            x = torch.from_numpy(normalise(target["img"][sl]))[None, None]
            net = model(x)[0].argmax(0).numpy() == 2
        names = list(faces)
        pairs = [dice(faces[a], faces[b]) for i, a in enumerate(names) for b in names[i + 1:]]
        row = dict(head=hid, routes_pairwise_mean=np.mean(pairs), routes_pairwise_min=np.min(pairs),
                   routes_vs_majority_mean=np.mean([dice(f, majority) for f in faces.values()]),
                   network_vs_direct=dice(net, faces["direct"]),
                   network_vs_routes_mean=np.mean([dice(net, f) for f in faces.values()]),
                   network_vs_majority=dice(net, majority))
        rows.append(row)
        print(json.dumps({k: v if isinstance(v, str) else round(float(v), 3) for k, v in row.items()}), flush=True)
    print("MEAN " + json.dumps({k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0] if k != "head"}))


if __name__ == "__main__":
    main()
