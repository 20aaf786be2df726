#!/usr/bin/python3
"""Derive training/validation labels for the unface segmentation model.

For every head in ../shared/data/heads:
  1. reorient to the closest canonical RAS layout, resample to a STORE^3 grid at 2.5 mm centred on
     the foreground bounding box (common.py),
  2. head = thresholded, hole-filled foreground,
  3. register the mridefacer head template (templates/mridefacer/head_tmpl.nii.gz) to the head with
     elastix (affine, then B-spline), masked to where the template has data,
  4. warp the mridefacer face+teeth+ear removal mask (face_teeth_ear_mask.nii.gz, 1 keep / 0
     remove), split in template space into face (anterior part) and ears (lateral part posterior
     to the face), and the template brain (head_tmpl_brain.nii.gz > 0),
  5. brain = DLMUSE parcellation > 0 where ../shared/data/brainmasks has one (12 IXI heads), else the
     warped template brain; face and ears are clipped by the brain dilated by 5 mm,
  6. Subj1_FL (FLAIR) gets the labels of Subj1_T1 (same person) through a rigid T1->FLAIR
     registration.

Labels: 0 background/air, 1 head (other tissue), 2 face, 3 ears, 4 brain.
Writes models/train/work/labels/<id>_{img,lab}.nii.gz and work/png/<id>.png overlays.

Usage: /usr/bin/python3 models/train/make_labels.py [--only ID ...] [--threads 2]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import nibabel as nib
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (STORE, SPACING, load_canonical, grid_centre_mm, resample_to_grid,  # noqa: E402
                    grid_affine)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
WORK = os.path.join(HERE, "work")
LAB = os.path.join(WORK, "labels")
PNG = os.path.join(WORK, "png")
TPL = os.path.join(DATA, "templates", "mridefacer")
# The one head whose labels come from the mridefacer template; every other head's come from it.
ATLAS = "T1_head_ext2"
FACE_DEPTH_MM = 20
# The brow line on the atlas (its 2.5 mm store grid, canonical z index), read off
# work/png/T1_head_ext2.png: the top of the supraorbital ridge. The face is what lies below it;
# mridefacer's thin forehead shell above it is not face, and a shell a few voxels thin is
# mostly boundary, which no network places to the voxel.
ATLAS_BROW_Z = 68

AFFINE_PAR = """
(FixedInternalImagePixelType "float")
(MovingInternalImagePixelType "float")
(FixedImageDimension 3)
(MovingImageDimension 3)
(UseDirectionCosines "true")
(Registration "MultiResolutionRegistration")
(Interpolator "BSplineInterpolator")
(ResampleInterpolator "FinalBSplineInterpolator")
(Resampler "DefaultResampler")
(FixedImagePyramid "FixedSmoothingImagePyramid")
(MovingImagePyramid "MovingSmoothingImagePyramid")
(Optimizer "AdaptiveStochasticGradientDescent")
(Transform "AffineTransform")
(Metric "AdvancedMattesMutualInformation")
(AutomaticScalesEstimation "true")
(AutomaticTransformInitialization "false")
(HowToCombineTransforms "Compose")
(NumberOfHistogramBins 32)
(ErodeMask "false")
(RequiredRatioOfValidSamples 0.05)
(NumberOfResolutions 4)
(MaximumNumberOfIterations 500)
(NumberOfSpatialSamples 4000)
(NewSamplesEveryIteration "true")
(ImageSampler "RandomCoordinate")
(BSplineInterpolationOrder 1)
(FinalBSplineInterpolationOrder 1)
(DefaultPixelValue 0)
(WriteResultImage "false")
(ResultImagePixelType "float")
(ResultImageFormat "nii.gz")
"""

BSPLINE_PAR = """
(FixedInternalImagePixelType "float")
(MovingInternalImagePixelType "float")
(FixedImageDimension 3)
(MovingImageDimension 3)
(UseDirectionCosines "true")
(Registration "MultiResolutionRegistration")
(Interpolator "BSplineInterpolator")
(ResampleInterpolator "FinalBSplineInterpolator")
(Resampler "DefaultResampler")
(FixedImagePyramid "FixedSmoothingImagePyramid")
(MovingImagePyramid "MovingSmoothingImagePyramid")
(Optimizer "AdaptiveStochasticGradientDescent")
(Transform "BSplineTransform")
(Metric "AdvancedMattesMutualInformation")
(FinalGridSpacingInPhysicalUnits 30)
(GridSpacingSchedule 2.0 1.0)
(HowToCombineTransforms "Compose")
(NumberOfHistogramBins 32)
(ErodeMask "false")
(RequiredRatioOfValidSamples 0.05)
(NumberOfResolutions 2)
(MaximumNumberOfIterations 300)
(NumberOfSpatialSamples 4000)
(NewSamplesEveryIteration "true")
(ImageSampler "RandomCoordinate")
(BSplineInterpolationOrder 1)
(FinalBSplineInterpolationOrder 1)
(DefaultPixelValue 0)
(WriteResultImage "false")
(ResultImagePixelType "float")
(ResultImageFormat "nii.gz")
"""

# Head to head: both images show the whole face, so a finer grid can follow nose, orbits and jaw.
ATLAS_BSPLINE_PAR = BSPLINE_PAR.replace("(FinalGridSpacingInPhysicalUnits 30)", "(FinalGridSpacingInPhysicalUnits 20)") \
    .replace("(GridSpacingSchedule 2.0 1.0)", "(GridSpacingSchedule 4.0 2.0 1.0)") \
    .replace("(NumberOfResolutions 2)", "(NumberOfResolutions 3)")

RIGID_PAR = AFFINE_PAR.replace('(Transform "AffineTransform")', '(Transform "EulerTransform")')


def head_mask(img):
    """Person vs air on the 2.5 mm grid: smoothed intensity above 8% of the robust range, largest
    component, closed, holes filled in 3D and slice by slice in all three orientations (sinuses,
    mouth, airway)."""
    sm = ndi.gaussian_filter(img, 0.8)
    lo, hi = np.percentile(sm[sm > 0] if np.any(sm > 0) else sm, [0.5, 99.5])
    fg = sm > 0.08 * hi
    fg = ndi.binary_opening(fg, iterations=1)
    lab, n = ndi.label(fg)
    if n > 1:
        sizes = ndi.sum(fg, lab, range(1, n + 1))
        fg = lab == (int(np.argmax(sizes)) + 1)
    fg = ndi.binary_closing(np.pad(fg, 3), iterations=3)[3:-3, 3:-3, 3:-3]
    fg = ndi.binary_fill_holes(fg)
    for ax in range(3):
        fg = np.stack([ndi.binary_fill_holes(s) for s in np.moveaxis(fg, ax, 0)], ax)
    return fg


def template_masks():
    """Canonical template image, its data mask, face / ears / brain masks (same voxel grid)."""
    t = nib.load(os.path.join(TPL, "head_tmpl.nii.gz"))
    aff = t.affine
    tdata = np.asanyarray(t.dataobj).astype(np.float32)
    # The mask's own sform differs; it shares the template's voxel grid (data README).
    keep = np.asanyarray(nib.load(os.path.join(TPL, "face_teeth_ear_mask.nii.gz")).dataobj) > 0.5
    brain = np.asanyarray(nib.load(os.path.join(TPL, "head_tmpl_brain.nii.gz")).dataobj) > 0
    remove = ~keep
    # Template voxel axes: x (L->R flipped in world), y posterior->anterior, z inferior->superior.
    # The removal region anterior of y index 41 is the face (+teeth, jaw, chin); posterior of it
    # only the two lateral ear boxes remain (z 40..62, x < 10 or x > 53).
    yy = np.arange(remove.shape[1])[None, :, None]
    face = remove & (yy >= 41)
    ears = remove & (yy < 41)
    ornt = nib.orientations.io_orientation(aff)
    tr = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt("RAS"))
    shape = tdata.shape
    canon = lambda a: nib.orientations.apply_orientation(a, tr)  # noqa: E731
    caff = aff @ nib.orientations.inv_ornt_aff(tr, shape)
    out = {k: canon(v).astype(np.float32) for k, v in
           dict(img=tdata, face=face, ears=ears, brain=brain).items()}
    out["datamask"] = (ndi.binary_erosion(out["img"] > 0, iterations=1)).astype(np.uint8)
    return out, caff


def top_centroid(mask, affine, depth_mm=150.0):
    """World centroid of the mask voxels within depth_mm of its top (superior) end."""
    ijk = np.argwhere(mask)
    xyz = nib.affines.apply_affine(affine, ijk)
    top = xyz[:, 2].max()
    sel = xyz[:, 2] > top - depth_mm
    return xyz[sel].mean(0)


def run(cmd, log):
    with open(log, "a") as fh:
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        r = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}; see {log}")


def save(arr, aff, path, dtype=np.float32):
    img = nib.Nifti1Image(arr.astype(dtype), aff)
    img.set_qform(aff, 1)
    img.set_sform(aff, 1)
    nib.save(img, path)


def transformix(tp_file, moving_arr, moving_aff, tmp, name, log):
    src = os.path.join(tmp, name + "_in.nii.gz")
    save(moving_arr, moving_aff, src)
    od = os.path.join(tmp, "tfx_" + name)
    os.makedirs(od, exist_ok=True)
    run(["transformix", "-in", src, "-out", od, "-tp", tp_file], log)
    res = [f for f in os.listdir(od) if f.startswith("result")][0]
    return np.asanyarray(nib.load(os.path.join(od, res)).dataobj).astype(np.float32)


def set_params(tp_file, **kw):
    txt = open(tp_file).read()
    lines = []
    for ln in txt.splitlines():
        key = ln.strip("()").split(" ")[0] if ln.startswith("(") else None
        if key in kw:
            continue
        lines.append(ln)
    for k, v in kw.items():
        lines.append(f"({k} {v})")
    open(tp_file, "w").write("\n".join(lines) + "\n")


def prepare(path):
    data, caff, zooms = load_canonical(path)
    centre = grid_centre_mm(data, zooms)
    img = resample_to_grid(data, zooms, centre, size=STORE)
    gaff = grid_affine(caff, zooms, centre, size=STORE)
    return img, gaff, (data, caff, zooms, centre)


def load_atlas():
    a = nib.load(os.path.join(LAB, ATLAS + "_img.nii.gz"))
    return dict(img=np.asanyarray(a.dataobj).astype(np.float32), affine=a.affine,
                lab=np.asanyarray(nib.load(os.path.join(LAB, ATLAS + "_lab.nii.gz")).dataobj))


def register_template(img, gaff, head, tmp, threads, log, bspline=True):
    tm, taff = template_masks()
    # initial alignment: translate the template so the top-150 mm centroids agree
    shift = top_centroid(head, gaff) - top_centroid(tm["img"] > 0.1 * tm["img"].max(), taff)
    taff2 = taff.copy()
    taff2[:3, 3] += shift
    fix = os.path.join(tmp, "fixed.nii.gz")
    mov = os.path.join(tmp, "moving.nii.gz")
    mmask = os.path.join(tmp, "mmask.nii.gz")
    save(img, gaff, fix)
    save(tm["img"], taff2, mov)
    save(tm["datamask"], taff2, mmask, np.uint8)
    # fixed mask: the dilated head within 200 mm of its top (the template has no neck)
    fmask = os.path.join(tmp, "fmask.nii.gz")
    fm = ndi.binary_dilation(head, iterations=3)
    zw = nib.affines.apply_affine(gaff, np.argwhere(fm))[:, 2]
    ijk = np.argwhere(fm)
    fm[tuple(ijk[zw < zw.max() - 200].T)] = False
    save(fm, gaff, fmask, np.uint8)
    pa = os.path.join(tmp, "affine.txt")
    open(pa, "w").write(AFFINE_PAR)
    cmd = ["elastix", "-f", fix, "-m", mov, "-mMask", mmask, "-fMask", fmask, "-out", tmp, "-p", pa,
           "-threads", str(threads)]
    if bspline:
        pb = os.path.join(tmp, "bspline.txt")
        open(pb, "w").write(BSPLINE_PAR)
        cmd += ["-p", pb]
    run(cmd, log)
    tp = os.path.join(tmp, "TransformParameters.%d.txt" % (1 if bspline else 0))
    set_params(tp, FinalBSplineInterpolationOrder=1, ResultImagePixelType='"float"')
    if bspline:
        set_params(os.path.join(tmp, "TransformParameters.0.txt"), FinalBSplineInterpolationOrder=1,
                   ResultImagePixelType='"float"')
    out = {}
    for k in ("face", "ears", "brain"):
        out[k] = transformix(tp, tm[k], taff2, tmp, k, log) > 0.5
    return out


def thicken_face(face, head, depth_mm=FACE_DEPTH_MM):
    """The mridefacer face is a shell a centimetre or two deep. Sweeping it posteriorly (canonical
    axis 1) through the head by depth_mm takes in what the face region should hold beneath the
    skin: the orbit contents behind the eyelids, the nasal cavity, the maxilla, teeth and jaw."""
    out = face.copy()
    for step in range(1, int(round(depth_mm / SPACING)) + 1):
        out[:, :-step, :] |= face[:, step:, :]
    return out & head


def initial_pose(head, gaff, ahead, aaff):
    """World transform that lays the atlas head over this one before registration: the centroids
    of the top 150 mm agree, and the pitch and roll are those (in 10-degree steps) at which the
    two head masks overlap best. Heads scanned tilted forward by 30 degrees or more (Subj1) are
    otherwise out of reach of the affine step."""
    cs, ca = top_centroid(head, gaff), top_centroid(ahead, aaff)
    inv = np.linalg.inv(aaff)
    pts = nib.affines.apply_affine(gaff, np.argwhere(head)) - cs
    best, best_score = np.eye(4), -1.0
    for pitch in range(-40, 41, 10):
        for roll in (-10, 0, 10):
            R = rotation_x(pitch) @ rotation_y(roll)
            # subject point p corresponds to atlas point R^T p
            ijk = np.rint(nib.affines.apply_affine(inv, pts @ R + ca)).astype(int)
            inside = np.all((ijk >= 0) & (ijk < np.array(ahead.shape)), axis=1)
            hits = ahead[tuple(ijk[inside].T)].sum()
            score = 2 * hits / (len(pts) + ahead.sum())
            if score > best_score:
                best_score = score
                T = np.eye(4)
                T[:3, :3] = R
                T[:3, 3] = cs - R @ ca
                best = T
    return best


def rotation_x(deg):
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def rotation_y(deg):
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def register_atlas(img, head, atlas, gaff, tmp, threads, log):
    """Atlas head -> this head: affine then B-spline on the whole head, face included, so that the
    face region follows this head's own nose, orbits and jaw. Returns the warped atlas labels."""
    fix, mov = os.path.join(tmp, "fixed.nii.gz"), os.path.join(tmp, "moving.nii.gz")
    fmask, mmask = os.path.join(tmp, "fmask.nii.gz"), os.path.join(tmp, "mmask.nii.gz")
    ahead = atlas["lab"] > 0
    aaff = initial_pose(head, gaff, ahead, atlas["affine"]) @ atlas["affine"]
    save(img, gaff, fix)
    save(atlas["img"], aaff, mov)
    save(ndi.binary_dilation(head, iterations=2), gaff, fmask, np.uint8)
    save(ndi.binary_dilation(ahead, iterations=2), aaff, mmask, np.uint8)
    pa, pb = os.path.join(tmp, "affine.txt"), os.path.join(tmp, "bspline.txt")
    open(pa, "w").write(AFFINE_PAR)
    open(pb, "w").write(ATLAS_BSPLINE_PAR)
    run(["elastix", "-f", fix, "-m", mov, "-fMask", fmask, "-mMask", mmask, "-out", tmp, "-p", pa, "-p", pb,
         "-threads", str(threads)], log)
    for i in (0, 1):
        set_params(os.path.join(tmp, "TransformParameters.%d.txt" % i), FinalBSplineInterpolationOrder=1,
                   ResultImagePixelType='"float"')
    tp = os.path.join(tmp, "TransformParameters.1.txt")
    return {k: transformix(tp, (atlas["lab"] == v).astype(np.float32), aaff, tmp, k, log) > 0.5
            for k, v in (("face", 2), ("ears", 3), ("brain", 4))}


def compose(head, face, ears, brain):
    lab = np.zeros(head.shape, np.uint8)
    lab[head] = 1
    brain = brain & head
    guard = ndi.binary_dilation(brain, iterations=2)  # 2 voxels = 5 mm
    face = face & head & ~guard
    ears = ears & head & ~guard & ~face
    lab[face] = 2
    lab[ears] = 3
    lab[brain] = 4
    return lab


def render(img, lab, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    cmap = ListedColormap([(0, 0, 0, 0), (0.2, 0.4, 1, 0.25), (1, 0.1, 0.1, 0.5), (0.1, 1, 0.1, 0.6),
                           (1, 1, 0, 0.3)])
    n = img.shape[0]
    # slices: mid-sagittal (centre of brain or of head), axial through the nose (face label's
    # most anterior point), coronal through the ears
    ref = np.argwhere(lab == 4) if np.any(lab == 4) else np.argwhere(lab > 0)
    cx = int(np.round(ref[:, 0].mean())) if len(ref) else n // 2
    f = np.argwhere(lab == 2)
    if len(f):
        ant = f[f[:, 1] >= f[:, 1].max() - 1]
        az = int(np.round(ant[:, 2].mean()))
    else:
        az = n // 2
    e = np.argwhere(lab == 3)
    cy = int(np.round(e[:, 1].mean())) if len(e) else n // 2
    ez = int(np.round(e[:, 2].mean())) if len(e) else n // 2
    views = [(img[cx], lab[cx], f"sagittal x={cx}"), (img[cx - 12], lab[cx - 12], f"sagittal x={cx-12}"),
             (img[:, :, az], lab[:, :, az], f"axial z={az} (nose)"),
             (img[:, :, ez], lab[:, :, ez], f"axial z={ez} (ears)"),
             (img[:, cy, :], lab[:, cy, :], f"coronal y={cy} (ears)")]
    fig, ax = plt.subplots(1, len(views), figsize=(4 * len(views), 4.3))
    vmax = np.percentile(img, 99.5)
    for a, (im, lb, t) in zip(ax, views):
        a.imshow(im.T, origin="lower", cmap="gray", vmin=0, vmax=vmax)
        a.imshow(lb.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=4.5, interpolation="nearest")
        a.set_title(t, fontsize=9)
        a.axis("off")
    fig.suptitle(title + "  (blue head, red face, green ears, yellow brain)", fontsize=10)
    plt.tight_layout()
    plt.savefig(path, dpi=75)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(LAB, exist_ok=True)
    os.makedirs(PNG, exist_ok=True)
    heads = sorted(f[:-7] for f in os.listdir(os.path.join(DATA, "heads")) if f.endswith(".nii.gz"))
    # the atlas first, the FLAIR after its T1
    heads = [ATLAS] + [h for h in heads if h not in (ATLAS, "Subj1_FL")] + ["Subj1_FL"]
    if args.only:
        heads = [h for h in heads if h in args.only]
    log = os.path.join(WORK, "make_labels.log")
    summary = {}
    for hid in heads:
        tmp = tempfile.mkdtemp(prefix="unface_lab_")
        try:
            img, gaff, (data, caff, zooms, centre) = prepare(os.path.join(DATA, "heads", hid + ".nii.gz"))
            head = head_mask(img)
            bm_path = os.path.join(DATA, "brainmasks", hid + "_DLMUSE.nii.gz")
            if hid == "Subj1_FL":
                # labels of Subj1_T1 carried over by a rigid T1 -> FLAIR registration
                t1 = nib.load(os.path.join(LAB, "Subj1_T1_img.nii.gz"))
                t1l = np.asanyarray(nib.load(os.path.join(LAB, "Subj1_T1_lab.nii.gz")).dataobj)
                fix = os.path.join(tmp, "fixed.nii.gz")
                mov = os.path.join(tmp, "moving.nii.gz")
                save(img, gaff, fix)
                save(np.asanyarray(t1.dataobj), t1.affine, mov)
                pr = os.path.join(tmp, "rigid.txt")
                open(pr, "w").write(RIGID_PAR.replace("(NumberOfResolutions 4)", "(NumberOfResolutions 3)"))
                run(["elastix", "-f", fix, "-m", mov, "-out", tmp, "-p", pr, "-threads", str(args.threads)], log)
                tp = os.path.join(tmp, "TransformParameters.0.txt")
                set_params(tp, FinalBSplineInterpolationOrder=1, ResultImagePixelType='"float"')
                w = {k: transformix(tp, (t1l == v).astype(np.float32), t1.affine, tmp, k, log) > 0.5
                     for k, v in (("face", 2), ("ears", 3), ("brain", 4))}
                src = "Subj1_T1 labels, rigid T1->FLAIR"
            elif hid == ATLAS:
                w = register_template(img, gaff, head, tmp, args.threads, log)
                w["face"] = thicken_face(w["face"], head)
                w["face"][:, :, ATLAS_BROW_Z + 1:] = False
                src = f"atlas: mridefacer template affine+bspline, face swept {FACE_DEPTH_MM} mm posteriorly, below the brow"
            else:
                w = register_atlas(img, head, load_atlas(), gaff, tmp, args.threads, log)
                src = f"{ATLAS} atlas affine+bspline"
            brain = w["brain"]
            bsrc = "template"
            if os.path.exists(bm_path):
                bm = nib.as_closest_canonical(nib.load(bm_path))
                bmd = (np.asanyarray(bm.dataobj) > 0).astype(np.float32)
                brain = resample_to_grid(bmd, zooms, centre, size=STORE, antialias=False) > 0.5
                bsrc = "DLMUSE"
            elif hid == "Subj1_FL":
                bsrc = "Subj1_T1 (template)"
            lab = compose(head, w["face"], w["ears"], brain)
            save(img, gaff, os.path.join(LAB, hid + "_img.nii.gz"))
            save(lab, gaff, os.path.join(LAB, hid + "_lab.nii.gz"), np.uint8)
            counts = {c: int((lab == i).sum()) for i, c in enumerate(["bg", "head", "face", "ears", "brain"])}
            # overlap of the raw warped face/ears with the brain (before clipping), for the record
            summary[hid] = dict(labels=src, brain=bsrc, centre_mm=[float(c) for c in centre],
                                counts=counts,
                                raw_face_brain_overlap=int((w["face"] & brain).sum()),
                                raw_ears_brain_overlap=int((w["ears"] & brain).sum()))
            render(img, lab, os.path.join(PNG, hid + ".png"), f"{hid}: {src}; brain {bsrc}")
            print(hid, json.dumps(summary[hid]), flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    sp = os.path.join(LAB, "summary.json")
    old = json.load(open(sp)) if os.path.exists(sp) else {}
    old.update(summary)
    json.dump(old, open(sp, "w"), indent=1)


if __name__ == "__main__":
    main()
