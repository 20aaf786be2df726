#!/usr/bin/python3
"""Train the unface segmentation U-Net on CPU with domain-randomised samples.

Every sample is drawn on the fly from one training head (work/labels/<id>_{img,lab}.nii.gz, a
128^3 store grid at 2.5 mm, see make_labels.py):
  * spatial: with p=0.2 a random axis permutation and flips (all 48 axis orders/signs), with p=0.7
    an extra oblique rotation up to 30 deg about a random axis, scale 0.9-1.1, shift up to +-20 mm,
    then cropped/resampled to the 96^3 model grid (torch grid_sample),
  * intensity, one of
      - synthetic (p=0.65, SynthSeg style): sub-labels = label class x intensity tertile of the real
        image inside that class, plus a "skull" sub-label (dark tissue within 12 mm of the brain);
        a random mean and spread per sub-label (bone bright as in CT with p=0.35), the air dark,
        blended with a random transform of the real image (0-40%) for texture,
      - real (p=0.35): the real image with a random gamma, inverted inside the head with p=0.3,
  * bias field (smooth, x0.6-1.6), Gaussian blur, thick slices 2.5-7 mm along a random axis
    (p=0.4), Gaussian noise,
  * FOV crop (p=0.35): everything beyond a random plane along a random axis set to air, labels 0,
  * skull-stripped (p=0.25): only the brain kept, every other label 0 (no face to find),
  * normalisation as at inference: clip to [p0.5, p99.5], scale to [0, 1].
Loss: class-weighted cross-entropy (ears x10, face x1.5) + weighted soft Dice (head 1, face 2, ears 3,
brain 1). Adam, cosine learning rate over
the time/iteration budget. Checkpoints: work/ckpt_last.pt (every --ckpt-every iterations) and
work/ckpt_best.pt (best mean face Dice on the validation heads, canonical orientation).
Log: work/train.log.

Usage: nice -n 19 /usr/bin/python3 models/train/train.py --minutes 80 [--resume]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import nibabel as nib
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from net import UNet3D, widen, widen_finest  # noqa: E402
from common import GRID, STORE, normalise, SPACING  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
LAB = os.path.join(WORK, "labels")
NCLS = 5
CE_WEIGHTS = torch.tensor([1.0, 1.0, 1.5, 10.0, 1.0])
DICE_WEIGHTS = torch.tensor([0, 1.0, 2.0, 3.0, 1.0])  # face counts double, the small ears triple
# The face's extra weight in both losses (runs 1-4: 1.5 and 2) moves the face's back edge, which
# nothing in the image marks, deeper than the labels put it: the run-3 network's face is 41.9-46.7 mm
# deep on every head, the labels' 35-49 mm (mean 41), so most of its excess face lies behind the
# labels' back edge (evaluate.py, section 2c). --unweighted-face sets both to 1.
UNWEIGHTED_FACE = False
# Run 7: the cross-entropy weight of brain voxels within NEAR_FACE_MM of the face (1: no extra
# weight). Runs 5 and 6 called the temporal poles, brain tucked behind the orbits, head, so the
# runtime's gap rule did not protect them from the face (models/README.md, run 6).
BRAIN_NEAR_FACE = 1.0
NEAR_FACE_MM = 15


def load_split():
    return json.load(open(os.path.join(HERE, "split.json")))


def load_head(hid):
    img = np.asanyarray(nib.load(os.path.join(LAB, hid + "_img.nii.gz")).dataobj).astype(np.float32)
    lab = np.asanyarray(nib.load(os.path.join(LAB, hid + "_lab.nii.gz")).dataobj).astype(np.uint8)
    r = normalise(img)
    sub = np.zeros(lab.shape, np.uint8)
    for c in range(1, 5):
        m = lab == c
        if m.sum() < 10:
            continue
        t1, t2 = np.percentile(r[m], [33.3, 66.6])
        b = np.digitize(r[m], [t1, t2])
        sub[m] = (c - 1) * 3 + b + 1
    brain = lab == 4
    if brain.any():
        near = ndi.distance_transform_edt(~brain) <= 5
        mm = (lab >= 1) & (lab <= 3)
        thr = np.percentile(r[lab == 1], 33.3)
        sub[mm & near & (r < thr)] = 13
    return dict(id=hid, r=torch.from_numpy(r)[None, None], lab=torch.from_numpy(lab.astype(np.float32))[None, None],
                sub=torch.from_numpy(sub.astype(np.float32))[None, None])


def rand_rotation(rng, max_deg):
    ax = rng.normal(size=3)
    ax /= np.linalg.norm(ax)
    a = math.radians(rng.uniform(-max_deg, max_deg))
    K = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    return np.eye(3) + math.sin(a) * K + (1 - math.cos(a)) * K @ K


P_PERM = 0.2
P_SYNTH = 0.65
P_STRIPPED = 0.25
# A sharp sample is the store grid itself, shifted by whole voxels: no rotation, scaling or blur,
# so the skin's dim outer layer looks as it does at run time (the runtime's grid is the store
# grid's centre, resampled the same way). Runs 1-3 had none: every sample was interpolated and many
# blurred, and the network's head came out about a voxel inside its labels' (models/README.md).
P_SHARP = 0.0
# The fraction of sharp samples turned about the left-right axis (pitch, up to PITCH_DEG) before
# the whole-voxel shift. The run-8 network loses 0.03-0.06 of face Dice when a head is pitched by
# 20 degrees (up to 0.2 at 30), and Subj1, scanned tilted forward, reaches IXI levels once turned
# (pose_sensitivity.py): random-axis rotations of blurred samples had not taught it pitched heads.
P_PITCH = 0.0
PITCH_DEG = 25


def rand_theta(rng):
    A = np.eye(3)
    if rng.random() < P_PERM:
        P = np.eye(3)[rng.permutation(3)] * rng.choice([-1, 1], size=3)[:, None]
        A = P @ A
    if rng.random() < 0.7:
        A = rand_rotation(rng, 30) @ A
    A = A * rng.uniform(0.9, 1.1)
    A = A * (GRID / STORE)
    t = rng.uniform(-20, 20, size=3) / (STORE * 2.5 / 2)
    th = np.concatenate([A, t[:, None]], 1)
    return torch.tensor(th, dtype=torch.float32)[None]


def gauss_blur(x, sigma):
    if sigma < 0.2:
        return x
    r = int(math.ceil(2.5 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    for d in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + d] = len(k)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - d)] = r
        pad[2 * (2 - d) + 1] = r
        x = F.conv3d(F.pad(x, pad, mode="replicate"), k.view(shape))
    return x


def sharp_theta(rng):
    shift = rng.integers(-8, 9, size=3) * 2.0 / STORE  # whole store voxels, up to 20 mm
    A = np.eye(3)
    if P_PITCH > 0 and rng.random() < P_PITCH:
        # affine_grid's coordinates run (z, y, x) of the [x][y][z] store grid: its first two are
        # the superior and anterior axes, so this turns the head about left-right
        a = math.radians(rng.uniform(-PITCH_DEG, PITCH_DEG))
        A[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    th = np.concatenate([A * (GRID / STORE), shift[:, None]], 1)
    return torch.tensor(th, dtype=torch.float32)[None]


def make_sample(h, rng):
    # No draw at all when off, so that a run without sharp samples gets the sample stream of runs 1-3.
    sharp = P_SHARP > 0 and rng.random() < P_SHARP
    th = sharp_theta(rng) if sharp else rand_theta(rng)
    grid = F.affine_grid(th, (1, 1, GRID, GRID, GRID), align_corners=False)
    r = F.grid_sample(h["r"], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ls = F.grid_sample(torch.cat([h["lab"], h["sub"]], 1), grid, mode="nearest", padding_mode="zeros",
                       align_corners=False)
    lab = ls[:, 0].long()
    sub = ls[:, 1].long()
    if rng.random() < P_SYNTH:  # synthetic intensities per sub-label
        means = torch.tensor(rng.uniform(0, 1, 14), dtype=torch.float32)
        means[0] = rng.uniform(0, 0.12)
        if rng.random() < 0.35:  # CT-like bone
            means[13] = rng.uniform(0.75, 1.0)
        stds = torch.tensor(rng.uniform(0, 0.08, 14), dtype=torch.float32)
        stds[0] = rng.uniform(0, 0.03)
        x = means[sub] + stds[sub] * torch.randn(sub.shape)
        x = gauss_blur(x[:, None], rng.uniform(0, 1.2))
        a = rng.uniform(0, 0.4)
        g = r.clamp(0, 1) ** rng.uniform(0.5, 2.0)
        if rng.random() < 0.5:
            g = (1 - g) * (lab[:, None] > 0)
        x = (1 - a) * x + a * g
    else:  # real image, random contrast
        x = r.clamp(0, 1) ** rng.uniform(0.5, 2.0)
        if rng.random() < 0.3:
            head = gauss_blur((lab[:, None] > 0).float(), 1.0)
            x = head * (1 - x) + (1 - head) * x
    # bias field
    if rng.random() < 0.8:
        b = torch.randn(1, 1, 4, 4, 4) * rng.uniform(0, 0.25)
        x = x * torch.exp(F.interpolate(b, size=(GRID,) * 3, mode="trilinear", align_corners=True))
    # thick slices or blur; a sharp sample keeps the resolution of the runtime's grid
    if not sharp:
        if rng.random() < 0.4:
            ax = int(rng.integers(3))
            k = int(rng.integers(2, 4))  # 5 or 7.5 mm
            ks = [1, 1, 1]
            ks[ax] = k
            small = F.avg_pool3d(x, ks, stride=ks, ceil_mode=True)
            x = F.interpolate(small, size=(GRID,) * 3, mode="trilinear", align_corners=False)
        elif rng.random() < 0.5:
            x = gauss_blur(x, rng.uniform(0.3, 1.0))
    x = x + torch.randn_like(x) * rng.uniform(0, 0.05)
    # FOV crop
    if rng.random() < 0.35:
        ax = int(rng.integers(3))
        pos = int(rng.integers(20, 50))
        sl = [slice(None)] * 5
        sl[2 + ax] = slice(0, pos) if rng.random() < 0.5 else slice(GRID - pos, GRID)
        x[tuple(sl)] = 0
        lsl = [slice(None)] * 4
        lsl[1 + ax] = sl[2 + ax]
        lab[tuple(lsl)] = 0
    # skull-stripped
    if rng.random() < P_STRIPPED:
        keep = lab == 4
        x = x * keep[:, None]
        lab = torch.where(keep, lab, torch.zeros_like(lab))
    x = normalise_t(x)
    return x, lab


def normalise_t(x):
    flat = x.flatten()
    k = flat.numel()
    lo = flat.kthvalue(max(1, int(0.005 * k))).values
    hi = flat.kthvalue(max(1, int(0.995 * k))).values
    if hi <= lo:
        hi = lo + 1
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def loss_fn(logits, lab):
    # The ears are about 0.2 % of the voxels: without extra weight they are never learned.
    ce_w, dice_w = CE_WEIGHTS.clone(), DICE_WEIGHTS.clone()
    if UNWEIGHTED_FACE:
        ce_w[2] = dice_w[2] = 1.0
    if BRAIN_NEAR_FACE == 1.0:
        ce = F.cross_entropy(logits, lab, weight=ce_w)
    else:
        reach = int(round(NEAR_FACE_MM / SPACING))
        # a cube's max pool as three along the axes: the same, and a 13^3 kernel made each step 2.5 s slower
        near = (lab == 2).float()[:, None]
        for k in ((2 * reach + 1, 1, 1), (1, 2 * reach + 1, 1), (1, 1, 2 * reach + 1)):
            near = F.max_pool3d(near, k, stride=1, padding=tuple(n // 2 for n in k))
        near = near[:, 0] > 0
        w = torch.where(near & (lab == 4), BRAIN_NEAR_FACE, 1.0)
        per_voxel = F.cross_entropy(logits, lab, weight=ce_w, reduction="none")
        # the same normalisation as the weighted mean above: by the weights' sum
        ce = (per_voxel * w).sum() / (ce_w[lab] * w).sum()
    p = logits.softmax(1)
    oh = F.one_hot(lab, NCLS).permute(0, 4, 1, 2, 3).float()
    inter = (p * oh).sum((0, 2, 3, 4))
    den = p.sum((0, 2, 3, 4)) + oh.sum((0, 2, 3, 4))
    dice = (2 * inter + 1) / (den + 1)
    return ce + ((1 - dice) * dice_w).sum() / dice_w.sum(), dice.detach()


def dice_np(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s > 0 else 1.0


def validate(model, val):
    model.eval()
    res = {}
    c0 = (STORE - GRID) // 2
    with torch.no_grad():
        for h in val:
            x = normalise_t(h["r"][..., c0:c0 + GRID, c0:c0 + GRID, c0:c0 + GRID].clone())
            lab = h["lab"][0, 0, c0:c0 + GRID, c0:c0 + GRID, c0:c0 + GRID].numpy().astype(np.uint8)
            pred = model(x).argmax(1)[0].numpy()
            res[h["id"]] = dict(face=dice_np(pred == 2, lab == 2), ears=dice_np(pred == 3, lab == 3),
                                brain=dice_np(pred == 4, lab == 4))
    model.train()
    return res


def main():
    global P_PERM, P_SYNTH, P_STRIPPED, P_SHARP, P_PITCH, UNWEIGHTED_FACE, BRAIN_NEAR_FACE
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=80)
    ap.add_argument("--iters", type=int, default=100000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--val-every", type=int, default=150)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", help="start from the weights of this checkpoint (a new optimiser and schedule)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-minutes", type=float, help="on --resume: replace the stored time budget")
    ap.add_argument("--p-perm", type=float, default=P_PERM, help="probability of an axis permutation/flip")
    ap.add_argument("--p-synth", type=float, default=P_SYNTH, help="probability of synthetic intensities")
    ap.add_argument("--p-stripped", type=float, default=P_STRIPPED, help="probability of a skull-stripped sample")
    ap.add_argument("--p-sharp", type=float, default=P_SHARP, help="probability of a sharp sample (see P_SHARP)")
    ap.add_argument("--p-pitch", type=float, default=P_PITCH, help="probability that a sharp sample is pitched (see P_PITCH)")
    ap.add_argument("--unweighted-face", action="store_true", help="face weight 1 in both losses (see UNWEIGHTED_FACE)")
    ap.add_argument("--brain-near-face", type=float, default=BRAIN_NEAR_FACE, help="cross-entropy weight of brain voxels near the face (see BRAIN_NEAR_FACE)")
    ap.add_argument("--widen", type=int, help="with --init: this many channels at full resolution (net.widen_finest)")
    ap.add_argument("--chans", help="with --init: channels per level, e.g. 8,16,48,96,128 (net.widen)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    P_PERM, P_SYNTH, P_STRIPPED, P_SHARP, P_PITCH = args.p_perm, args.p_synth, args.p_stripped, args.p_sharp, args.p_pitch
    UNWEIGHTED_FACE = args.unweighted_face
    BRAIN_NEAR_FACE = args.brain_near_face
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    split = load_split()
    log = open(os.path.join(WORK, "train.log"), "a")

    def say(s):
        line = time.strftime("%H:%M:%S ") + s
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    train = [load_head(h) for h in split["train"]]
    val = [load_head(h) for h in split["val"]]
    say(f"train {len(train)} heads, val {len(val)} heads: {split['val']}")
    it, spent, best = 0, 0.0, -1.0
    last = os.path.join(WORK, "ckpt_last.pt")
    if args.resume and os.path.exists(last):
        ck = torch.load(last)
        model = UNet3D.from_state(ck["model"])
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        opt.load_state_dict(ck["opt"])
        it, spent, best = ck["iter"], ck["spent"], ck.get("best", -1.0)
        budget = ck["budget_s"] if args.budget_minutes is None else args.budget_minutes * 60
        rng = np.random.default_rng(args.seed + it)  # fresh sample stream after a restart
        torch.manual_seed(args.seed + it)
        say(f"resumed at iter {it}, {spent/60:.1f} min spent, budget {budget/60:.1f} min, {vars(args)}")
    else:
        budget = args.minutes * 60
        if args.init:
            state = torch.load(args.init)["model"]
            if args.widen:
                state = widen_finest(state, args.widen)
            if args.chans:
                state = widen(state, [int(c) for c in args.chans.split(",")])
            model = UNet3D.from_state(state)
            say(f"initialised from {args.init}, {vars(args)}")
        else:
            model = UNet3D()
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    t0 = time.time() - spent
    run_loss, run_d = 0.0, torch.zeros(NCLS)
    n_run = 0
    while True:
        spent = time.time() - t0
        frac = max(spent / budget, it / args.iters)
        if frac >= 1:
            break
        lr = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        if it < 30:
            lr = lr * (it + 1) / 30
        for g in opt.param_groups:
            g["lr"] = lr
        h = train[int(rng.integers(len(train)))]
        x, lab = make_sample(h, rng)
        logits = model(x)
        loss, d = loss_fn(logits, lab)
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        run_loss += float(loss)
        run_d += d
        n_run += 1
        if it % 10 == 0:
            say(f"iter {it} loss {run_loss/n_run:.4f} dice head/face/ears/brain "
                + "/".join(f"{v:.3f}" for v in (run_d / n_run)[1:].tolist())
                + f" lr {lr:.2e} {spent/60:.1f} min ({spent/it:.2f} s/it)")
            run_loss, run_d, n_run = 0.0, torch.zeros(NCLS), 0
        if it % args.ckpt_every == 0:
            torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), iter=it, spent=time.time() - t0,
                            budget_s=budget, best=best), last + ".tmp")
            os.replace(last + ".tmp", last)
        if it % args.val_every == 0:
            res = validate(model, val)
            mf = float(np.mean([v["face"] for v in res.values()]))
            say(f"VAL iter {it} mean face {mf:.3f} " + json.dumps({k: {a: round(b, 3) for a, b in v.items()}
                                                                  for k, v in res.items()}))
            if mf > best:
                best = mf
                torch.save(dict(model=model.state_dict(), iter=it, val=res), os.path.join(WORK, "ckpt_best.pt"))
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), iter=it, spent=time.time() - t0,
                    budget_s=budget, best=best), last)
    res = validate(model, val)
    mf = float(np.mean([v["face"] for v in res.values()]))
    say(f"VAL final iter {it} mean face {mf:.3f} " + json.dumps(res))
    if mf > best:
        torch.save(dict(model=model.state_dict(), iter=it, val=res), os.path.join(WORK, "ckpt_best.pt"))
    torch.save(dict(model=model.state_dict(), iter=it, val=res), os.path.join(WORK, "ckpt_final.pt"))
    say("done")


if __name__ == "__main__":
    main()
