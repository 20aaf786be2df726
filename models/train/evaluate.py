#!/usr/bin/python3
"""Evaluate the unface segmentation model and print the acceptance table.

Runs the model the way the runtime will (common.py): closest canonical RAS, 96^3 grid at 2.5 mm
centred on the foreground bounding box, percentile normalisation, argmax of the 5 classes.

Checks
  1. validation heads (split.json "val", never trained on): face / ears / brain Dice against the
     registration-derived reference labels (work/labels, make_labels.py), canonical input;
  2. the same heads with the voxel axes permuted and flipped while the header stays identity
     ("lying header": the network sees a permuted head), and rotated 25 deg obliquely;
     Dice against the reference transformed the same way; 2b. the training heads, canonical input;
     2c. where the face errors lie; 2d. face Dice after rules a runtime could add (post_hoc_rules);
  3. all heads with a DLMUSE brain mask (12 IXI; train heads marked): brainmask voxels (label>0,
     native grid) falling inside the predicted face or ears (nearest-neighbour back to native);
  4. FLAIR Subj1_FL and the head CT (dicom/slicer_ctheadaxial_quarter, read with pydicom): face
     found, and its centroid anterior and inferior of the predicted brain centroid;
  5. skull-stripped control (controls/MR_Gd_skullstripped.nii.gz): predicted face / ear voxels
     (must be 0).

Usage: /usr/bin/python3 models/train/evaluate.py [--ckpt models/train/work/ckpt_best.pt]
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import nibabel as nib
import torch
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from net import UNet3D  # noqa: E402
from common import GRID, STORE, SPACING, load_canonical, grid_centre_mm, resample_to_grid, normalise  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.abspath(os.path.join(HERE, "..", "..", "..", "shared", "data"))
LAB = os.path.join(HERE, "work", "labels")


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s > 0 else float("nan")


def predict_probs(model, x):
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]), 1)[0].numpy()


def predict_grid(model, x):
    return predict_probs(model, x).argmax(0)


def brain_gap(probs):
    """The runtime's keepFaceFromBrain (src/segment/segment-head.ts): within 5 mm of any grid point
    whose brain probability exceeds 5%, the face and ear probabilities go to head."""
    out = probs.copy()
    near = ndi.distance_transform_edt(probs[4] <= 0.05) * SPACING <= 5
    out[1][near] += out[2][near] + out[3][near]
    out[2][near] = 0
    out[3][near] = 0
    return out


def skin_from_head_mask(probs, head):
    """Where the reference's head rule (make_labels.head_mask) finds the person and the network
    says background, the most probable other class; outside it, background."""
    lab = probs.argmax(0)
    fill = head & (lab == 0)
    lab[fill] = 1 + probs[1:, fill].argmax(0)
    lab[~head] = 0
    return lab


def post_hoc_rules(model, x, ref):
    """Face Dice of the network's argmax and of rules a runtime could add after it: the brain gap,
    the reference's head boundary, and left-right flip averaging (test-time augmentation)."""
    from make_labels import head_mask
    p = predict_probs(model, x)
    pf = predict_probs(model, x[::-1])[:, ::-1]
    head = head_mask(x)
    rf = ref == 2
    both = (p + pf) / 2
    return {"argmax": dice(p.argmax(0) == 2, rf), "brain gap": dice(brain_gap(p).argmax(0) == 2, rf),
            "head-mask skin": dice(skin_from_head_mask(p, head) == 2, rf),
            "flip average": dice(both.argmax(0) == 2, rf),
            "head-mask skin + flip average": dice(skin_from_head_mask(both, head) == 2, rf)}


def face_errors(pred, ref):
    """Where the predicted face and the reference disagree, in grid voxels: missed face voxels
    (FN) by the class predicted there, and face voxels too many (FP) by whether they lie
    posterior of the reference face in their (x, z) column (the reference's back edge is a
    registered atlas's, not an edge in the image); how many fewer voxels the network calls
    anything but background than the reference does (its outer boundary lying inside); and the
    face's mean depth in mm (face voxels per anterior-posterior column, over the columns the
    reference face crosses), the reference's and the network's."""
    rf, pf = ref == 2, pred == 2
    fn, fp = rf & ~pf, pf & ~rf
    ys = np.arange(ref.shape[1])[None, :, None]
    back = np.where(rf, ys, ref.shape[1]).min(1, keepdims=True)  # most posterior reference face voxel
    has = rf.any(1, keepdims=True)
    return dict(fn=int(fn.sum()), fn_as_background=int((fn & (pred == 0)).sum()), fn_as_head=int((fn & (pred == 1)).sum()),
                fp=int(fp.sum()), fp_behind_reference=int((fp & has & (ys < back)).sum()),
                head_deficit=int((ref > 0).sum() - (pred > 0).sum()),
                depth_mm_reference=round(float(rf.sum(1)[has[:, 0]].mean() * SPACING), 1),
                depth_mm_network=round(float(pf.sum(1)[has[:, 0]].mean() * SPACING), 1))


def prepare_native(data, zooms):
    centre = grid_centre_mm(data, zooms)
    g = resample_to_grid(data, zooms, centre, size=GRID)
    return normalise(g), centre


def to_native(pred, shape, zooms, centre):
    """Nearest-neighbour map of a grid prediction back onto the canonical native voxel grid."""
    offs = centre - (GRID - 1) / 2.0 * SPACING
    idx = [np.rint((np.arange(n) * z - o) / SPACING).astype(int) for n, z, o in zip(shape, zooms, offs)]
    valid = [(i >= 0) & (i < GRID) for i in idx]
    out = np.zeros(shape, np.uint8)
    ii = [np.clip(i, 0, GRID - 1) for i in idx]
    sub = pred[np.ix_(*ii)]
    m = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
    out[m] = sub[m]
    return out


def read_dicom_series(folder):
    import pydicom
    ds = [pydicom.dcmread(f) for f in sorted(glob.glob(os.path.join(folder, "*")))]
    ds = [d for d in ds if hasattr(d, "ImagePositionPatient")]
    iop = np.array(ds[0].ImageOrientationPatient, float)
    r, c = iop[:3], iop[3:]
    n = np.cross(r, c)
    ds.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, float))))
    vol = np.stack([d.pixel_array.astype(np.float32) * float(getattr(d, "RescaleSlope", 1))
                    + float(getattr(d, "RescaleIntercept", 0)) for d in ds], -1)  # [rows, cols, slices]
    vol = vol.transpose(1, 0, 2)  # [cols(x along r), rows(y along c), slices]
    ps = [float(v) for v in ds[0].PixelSpacing]  # row spacing, col spacing
    p0 = np.array(ds[0].ImagePositionPatient, float)
    p1 = np.array(ds[-1].ImagePositionPatient, float)
    step = (p1 - p0) / max(len(ds) - 1, 1)
    aff = np.eye(4)
    aff[:3, 0] = r * ps[1]
    aff[:3, 1] = c * ps[0]
    aff[:3, 2] = step
    aff[:3, 3] = p0
    aff = np.diag([-1, -1, 1, 1]) @ aff  # LPS -> RAS
    return nib.Nifti1Image(vol, aff)


def centroid(mask):
    idx = np.argwhere(mask)
    return idx.mean(0) if len(idx) else None


def rotate_grid(x, lab, deg_x=25.0, deg_z=15.0):
    """Oblique test: rotate grid image (linear) and labels (nearest) about the grid centre."""
    ax, az = np.radians(deg_x), np.radians(deg_z)
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    R = Rz @ Rx
    c = (np.array(x.shape) - 1) / 2.0
    off = c - R @ c
    xr = ndi.affine_transform(x, R, offset=off, order=1, mode="constant", cval=0)
    lr = ndi.affine_transform(lab, R, offset=off, order=0, mode="constant", cval=0)
    return xr, lr


PNG = os.path.join(HERE, "work", "png")


def render_pred(x, p, name):
    """Overlay of a prediction on the model grid: sagittal, axial and coronal through the face
    centroid (grid centre when no face)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    cmap = ListedColormap([(0, 0, 0, 0), (0.2, 0.4, 1, 0.25), (1, 0.1, 0.1, 0.55), (0.1, 1, 0.1, 0.6),
                           (1, 1, 0, 0.3)])
    c = centroid(p == 2)
    c = np.array([GRID // 2] * 3) if c is None else np.rint(c).astype(int)
    views = [(x[c[0]], p[c[0]], f"sag x={c[0]}"), (x[:, :, c[2]], p[:, :, c[2]], f"axial z={c[2]}"),
             (x[:, c[1], :], p[:, c[1], :], f"coronal y={c[1]}")]
    fig, ax = plt.subplots(1, 3, figsize=(12, 4.3))
    for a, (im, lb, t) in zip(ax, views):
        a.imshow(im.T, origin="lower", cmap="gray", vmin=0, vmax=1)
        a.imshow(lb.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=4.5, interpolation="nearest")
        a.set_title(t, fontsize=9)
        a.axis("off")
    fig.suptitle(f"prediction: {name} (red face, green ears, yellow brain, blue head)", fontsize=10)
    plt.tight_layout()
    plt.savefig(os.path.join(PNG, "pred_" + name.replace("/", "_").replace(" ", "_") + ".png"), dpi=60)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "work", "ckpt_best.pt"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(HERE, "work", "eval.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ck = torch.load(args.ckpt, map_location="cpu")
    model = UNet3D.from_state(ck["model"])
    model.eval()
    split = json.load(open(os.path.join(HERE, "split.json")))
    out = dict(ckpt=args.ckpt, iter=ck.get("iter"))
    c0 = (STORE - GRID) // 2
    sl = (slice(c0, c0 + GRID),) * 3

    print(f"checkpoint {args.ckpt} (iter {ck.get('iter')})\n")
    print("1-2. validation heads (never trained on): Dice vs registration-derived reference")
    print(f"{'head':22s} {'input':10s} {'face':>6s} {'ears':>6s} {'brain':>6s}")
    rows = []
    for hid in split["val"]:
        img = np.asanyarray(nib.load(os.path.join(LAB, hid + "_img.nii.gz")).dataobj).astype(np.float32)
        ref = np.asanyarray(nib.load(os.path.join(LAB, hid + "_lab.nii.gz")).dataobj)[sl]
        # the store grid shares centre and spacing with the model grid: its central crop is the
        # model input (check it against the runtime path)
        data, _, zooms = load_canonical(os.path.join(DATA, "heads", hid + ".nii.gz"))
        x, centre = prepare_native(data, zooms)
        assert np.allclose(resample_to_grid(data, zooms, centre, size=GRID), img[sl], atol=1e-3)
        variants = [("canonical", x, ref)]
        perm = (2, 0, 1)
        xp = np.flip(np.transpose(x, perm), axis=(0, 2))
        rp = np.flip(np.transpose(ref, perm), axis=(0, 2))
        variants.append(("perm+flip", xp, rp))
        xr, rr = rotate_grid(x, ref)
        variants.append(("oblique", normalise(xr), rr))
        for name, xi, ri in variants:
            p = predict_grid(model, xi)
            r = dict(head=hid, input=name, face=dice(p == 2, ri == 2), ears=dice(p == 3, ri == 3),
                     brain=dice(p == 4, ri == 4))
            rows.append(r)
            render_pred(xi, p, f"{hid} {name}")
            print(f"{hid:22s} {name:10s} {r['face']:6.3f} {r['ears']:6.3f} {r['brain']:6.3f}")
    for name in ("canonical", "perm+flip", "oblique"):
        rr = [r for r in rows if r["input"] == name]
        print(f"{'MEAN':22s} {name:10s} " + " ".join(f"{np.nanmean([r[k] for r in rr]):6.3f}"
                                                    for k in ("face", "ears", "brain")))
    out["val"] = rows

    print("\n2c. face errors on the validation heads, canonical input (grid voxels; see face_errors)")
    errs = []
    for hid in split["val"]:
        img = np.asanyarray(nib.load(os.path.join(LAB, hid + "_img.nii.gz")).dataobj).astype(np.float32)
        ref = np.asanyarray(nib.load(os.path.join(LAB, hid + "_lab.nii.gz")).dataobj)[sl]
        e = dict(head=hid, **face_errors(predict_grid(model, normalise(img[sl])), ref))
        errs.append(e)
        print(json.dumps(e))
    out["face_errors"] = errs

    print("\n2d. face Dice after post-hoc rules (see post_hoc_rules), canonical input")
    rules = {}
    for group in ("val", "train"):
        per_head = []
        for hid in split[group]:
            img = np.asanyarray(nib.load(os.path.join(LAB, hid + "_img.nii.gz")).dataobj).astype(np.float32)
            ref = np.asanyarray(nib.load(os.path.join(LAB, hid + "_lab.nii.gz")).dataobj)[sl]
            per_head.append(post_hoc_rules(model, normalise(img[sl]), ref))
        rules[group] = {k: float(np.mean([r[k] for r in per_head])) for k in per_head[0]}
        if group == "val":
            rules["val_per_head"] = dict(zip(split["val"], per_head))
    for k in rules["val"]:
        print(f"{k:32s} val mean {rules['val'][k]:.3f}  train mean {rules['train'][k]:.3f}  val "
              + " ".join(f"{r[k]:.3f}" for r in rules["val_per_head"].values()))
    out["post_hoc_rules"] = rules

    # The same on the heads the network was trained on: Dice as low there as on validation means
    # the network underfits its labels rather than failing to generalise.
    print("\n2b. training heads, canonical input: Dice vs their reference")
    train_rows = []
    for hid in split["train"]:
        img = np.asanyarray(nib.load(os.path.join(LAB, hid + "_img.nii.gz")).dataobj).astype(np.float32)
        ref = np.asanyarray(nib.load(os.path.join(LAB, hid + "_lab.nii.gz")).dataobj)[sl]
        p = predict_grid(model, normalise(img[sl]))
        e = face_errors(p, ref)
        r = dict(head=hid, face=dice(p == 2, ref == 2), ears=dice(p == 3, ref == 3), brain=dice(p == 4, ref == 4),
                 depth_mm_reference=e["depth_mm_reference"], depth_mm_network=e["depth_mm_network"])
        train_rows.append(r)
        print(f"{hid:22s} {'canonical':10s} {r['face']:6.3f} {r['ears']:6.3f} {r['brain']:6.3f}"
              f"  face depth {r['depth_mm_reference']:.1f} mm, network {r['depth_mm_network']:.1f} mm")
    print(f"{'MEAN':22s} {'canonical':10s} " + " ".join(f"{np.nanmean([r[k] for r in train_rows]):6.3f}"
                                                      for k in ("face", "ears", "brain")))
    out["train"] = train_rows

    print("\n3. brain-mask voxels (DLMUSE label>0, native grid) inside predicted face / ears")
    print(f"{'head':22s} {'split':5s} {'brain vox':>9s} {'in face':>7s} {'in ears':>7s}")
    bm_rows = []
    for f in sorted(glob.glob(os.path.join(DATA, "brainmasks", "*_DLMUSE.nii.gz"))):
        hid = os.path.basename(f).replace("_DLMUSE.nii.gz", "")
        data, _, zooms = load_canonical(os.path.join(DATA, "heads", hid + ".nii.gz"))
        bm = np.asanyarray(nib.as_closest_canonical(nib.load(f)).dataobj) > 0
        x, centre = prepare_native(data, zooms)
        p = to_native(predict_grid(model, x), data.shape, zooms, centre)
        r = dict(head=hid, split="val" if hid in split["val"] else "train", brain=int(bm.sum()),
                 in_face=int((bm & (p == 2)).sum()), in_ears=int((bm & (p == 3)).sum()))
        bm_rows.append(r)
        print(f"{hid:22s} {r['split']:5s} {r['brain']:9d} {r['in_face']:7d} {r['in_ears']:7d}")
    out["brainmask"] = bm_rows

    print("\n4. face location (centroids in grid voxels, RAS: +y anterior, +z superior)")
    cases = [("heads/Subj1_FL (FLAIR)", nib.load(os.path.join(DATA, "heads", "Subj1_FL.nii.gz"))),
             ("dicom/slicer_ctheadaxial_quarter (CT)",
              read_dicom_series(os.path.join(DATA, "dicom", "slicer_ctheadaxial_quarter")))]
    loc = []
    for name, im in cases:
        ci = nib.as_closest_canonical(im)
        data = np.asanyarray(ci.dataobj).astype(np.float32)
        zooms = np.array(ci.header.get_zooms()[:3], float)
        x, centre = prepare_native(data, zooms)
        p = predict_grid(model, x)
        fc, bc = centroid(p == 2), centroid(p == 4)
        ok = fc is not None and bc is not None and fc[1] > bc[1] and fc[2] < bc[2]
        r = dict(case=name, face_vox=int((p == 2).sum()), ears_vox=int((p == 3).sum()),
                 brain_vox=int((p == 4).sum()), face_centroid=None if fc is None else fc.round(1).tolist(),
                 brain_centroid=None if bc is None else bc.round(1).tolist(), anterior_inferior_of_brain=bool(ok))
        loc.append(r)
        print(json.dumps(r))
        render_pred(x, p, name.split()[0])
    out["location"] = loc

    print("\n5. skull-stripped control (must have no face / ears)")
    data, _, zooms = load_canonical(os.path.join(DATA, "controls", "MR_Gd_skullstripped.nii.gz"))
    x, centre = prepare_native(data, zooms)
    p = predict_grid(model, x)
    r = dict(face_vox=int((p == 2).sum()), ears_vox=int((p == 3).sum()), brain_vox=int((p == 4).sum()),
             head_vox=int((p == 1).sum()))
    out["control"] = r
    render_pred(x, p, "controls/MR_Gd_skullstripped")
    print(json.dumps(r))
    json.dump(out, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
