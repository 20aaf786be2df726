"""Shared helpers for the unface segmentation model (training side).

The model grid (see models/README.md):
  * the volume is reoriented to the closest canonical RAS voxel layout (a permutation and flips of
    the voxel axes, nibabel.as_closest_canonical; residual obliquity is ignored),
  * resampled (trilinear, with a Gaussian anti-alias pre-filter when downsampling) to an
    isotropic 2.5 mm grid of GRID^3 voxels whose centre is the centre of the bounding box of the
    foreground (see foreground_mask), expressed in the canonical voxel frame,
  * intensities scaled per volume: clip to [p0.5, p99.5] of the resampled grid, map to [0, 1].
"""
import numpy as np
import nibabel as nib
from scipy import ndimage as ndi

SPACING = 2.5  # mm
GRID = 96  # model input size per axis
STORE = 128  # training store grid (superset of the model grid, allows random shifts)
CLASSES = ["background", "head", "face", "ears", "brain"]


def load_canonical(path):
    img = nib.as_closest_canonical(nib.load(path))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if data.ndim > 3:
        data = data[..., 0]
    zooms = np.array(img.header.get_zooms()[:3], dtype=np.float64)
    return data, img.affine.copy(), zooms


def foreground_mask(data, zooms=None):
    """Rough foreground (person vs air): smoothed intensity above 10% of the robust max, largest
    connected component. Used for centring only. The same rule runs at inference time."""
    sm = ndi.gaussian_filter(data.astype(np.float32), 1.0)
    lo, hi = np.percentile(sm, [0.5, 99.5])
    fg = sm > lo + 0.1 * (hi - lo)
    lab, n = ndi.label(fg)
    if n > 1:
        sizes = ndi.sum(fg, lab, range(1, n + 1))
        fg = lab == (int(np.argmax(sizes)) + 1)
    return fg


def grid_centre_mm(data, zooms):
    """Centre (mm, canonical voxel frame: voxel i sits at i*zoom) of the foreground bounding box."""
    fg = foreground_mask(data, zooms)
    idx = np.argwhere(fg)
    if len(idx) == 0:
        return (np.array(data.shape) - 1) / 2.0 * zooms
    c = (idx.min(0) + idx.max(0)) / 2.0
    return c * zooms


def resample_to_grid(data, zooms, centre_mm, size=GRID, spacing=SPACING, order=1, antialias=True):
    """Sample `data` (canonical voxel frame, voxel i at i*zoom mm) on an isotropic grid of `size`^3
    voxels, `spacing` mm, centred at centre_mm. Outside: 0."""
    src = data.astype(np.float32)
    if antialias and order > 0:
        sig = np.maximum(spacing / zooms - 1.0, 0) * 0.5  # ~FWHM match when downsampling
        if np.any(sig > 0.05):
            src = ndi.gaussian_filter(src, sig)
    offs = centre_mm - (size - 1) / 2.0 * spacing
    scale = spacing / zooms
    start = offs / zooms
    out = ndi.affine_transform(src, scale, offset=start, output_shape=(size,) * 3, order=order,
                               mode="constant", cval=float(data.min()), prefilter=False)
    return out


def grid_affine(canon_affine, zooms, centre_mm, size=GRID, spacing=SPACING):
    """World affine of the resampled grid (keeps the canonical image's world placement)."""
    offs = centre_mm - (size - 1) / 2.0 * spacing
    # canonical voxel index v = (offs + i*spacing)/zooms
    M = np.diag(list(spacing / zooms) + [1.0])
    M[:3, 3] = offs / zooms
    return canon_affine @ M


def normalise(x, lo_p=0.5, hi_p=99.5):
    lo, hi = np.percentile(x, [lo_p, hi_p])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((x - lo) / (hi - lo), 0, 1).astype(np.float32)
