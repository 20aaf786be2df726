#!/usr/bin/python3
"""Train the render-face classifier (models/unface-render-face.onnx): does a skin render of the
verify stage show a face?

Data: the renders of scripts/render-face-training-set.ts (OUT/images.u8, OUT/index.jsonl; labels
there). Validation: people are split into folds, and every fold's people are scored by a network
trained without them (out-of-fold scores); the shipped network is then trained on everyone, with
the same settings. The figures printed go into models/README.md.

Usage: /usr/bin/python3 models/train/train_render_face.py [--data models/train/work/render-face]
           [--out models/unface-render-face.onnx] [--folds 5] [--epochs 14] [--threads 2]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 128
SEED = 20261203


class RenderFaceNet(nn.Module):
    """Five stride-2 stages of two 3x3 convolutions (128 -> 4 pixels), global average, one logit."""

    def __init__(self, widths=(16, 24, 32, 48, 64)):
        super().__init__()
        layers = []
        channels = 1
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


class Probability(nn.Module):
    """What is exported: grey levels 0-255 in, the probability of a face out."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, render):
        return torch.sigmoid(self.net(render / 255.0))


def load(data_dir):
    with open(os.path.join(data_dir, 'index.jsonl')) as f:
        index = [json.loads(line) for line in f if line.strip()]
    images = np.fromfile(os.path.join(data_dir, 'images.u8'), dtype=np.uint8).reshape(-1, SIZE, SIZE)
    assert len(images) == len(index), (len(images), len(index))
    return images, index


def augment(batch, generator):
    """Random shift (±8 px), scale (0.9-1.1), rotation (±10°), mirror, and a gamma (0.75-1.33) on
    the shading: the renders differ in framing and light from head to head, never in kind."""
    n = batch.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (8 / (SIZE / 2))
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1), torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, batch.shape, align_corners=False)
    moved = F.grid_sample(batch, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * math.log(1.33))
    lit = moved > 0
    return torch.where(lit, moved.clamp(min=1e-6) ** gamma, moved)


def train(images, labels, epochs, seed):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = RenderFaceNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    x = torch.from_numpy(images).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(labels).float()
    # Faces and non-faces weigh the same, whatever their counts.
    positive = float(y.mean())
    weights = torch.where(y > 0.5, 0.5 / positive, 0.5 / (1 - positive))
    batch = 64
    steps = epochs * math.ceil(len(x) / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch):
            pick = order[start:start + batch]
            logits = net(augment(x[pick], generator))
            loss = (F.binary_cross_entropy_with_logits(logits, y[pick], reduction='none') * weights[pick]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss) * len(pick)
        print(f'  epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}', flush=True)
    net.eval()
    return net


def scores(net, images):
    with torch.no_grad():
        x = torch.from_numpy(images).float().div_(255).unsqueeze(1)
        return torch.cat([torch.sigmoid(net(x[i:i + 256])) for i in range(0, len(x), 256)]).numpy()


DEFAULT_VIEWS = {(yaw, pitch) for yaw in (-60, -30, 0, 30, 60) for pitch in (20, 0, -20)}
FAINT_VIEWS = {(0, 20), (-30, 20), (30, 20), (0, 0), (0, -20)}


def summary(index, score, threshold):
    """Rates on the views the verify stage renders: the 15 default ones at the skin level, the
    faint look's five at the faint level."""
    def rate(select):
        picked = [s for s, e in zip(score, index) if select(e)]
        return sum(s >= threshold for s in picked), len(picked)

    def shown(e):
        return (e['level'] == 'skin' and (e['yaw'], e['pitch']) in DEFAULT_VIEWS) or (e['level'] == 'faint' and (e['yaw'], e['pitch']) in FAINT_VIEWS)

    lines = []
    for variant in ('original', 'nose-tip-cut', 'unface-remove', 'unface-remove-ears', 'plane-90', 'plane-65', 'skull-stripped'):
        for level in ('skin', 'faint'):
            hit, n = rate(lambda e: e['variant'] == variant and e['level'] == level and e['label'] >= 0 and shown(e))
            if n:
                lines.append(f'    {variant:20s} {level:5s} views with a face: {hit}/{n} ({100 * hit / n:.1f}%)')
        hit, n = rate(lambda e: e['variant'] == variant and e['label'] >= 0 and not shown(e))
        if n:
            lines.append(f'    {variant:20s} random views with a face: {hit}/{n} ({100 * hit / n:.1f}%)')
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--data', default=os.path.join(HERE, 'work', 'render-face'))
    parser.add_argument('--out', default=os.path.join(HERE, '..', 'unface-render-face.onnx'))
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--epochs', type=int, default=14)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--threshold', type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, index = load(args.data)
    labels = np.array([e['label'] for e in index])
    people = sorted({e['person'] for e in index if e['label'] == 1})
    # The folds deal out the people with a face in a fixed order; the others (the control) are always trained on.
    folds = [people[i::args.folds] for i in range(args.folds)]
    started = time.time()
    out_of_fold = np.full(len(index), np.nan)
    for k, held in enumerate(folds):
        print(f'fold {k + 1}/{len(folds)}: held out {", ".join(held)}', flush=True)
        train_rows = np.array([e['label'] >= 0 and e['person'] not in held for e in index])
        test_rows = np.array([e['person'] in held for e in index])
        net = train(images[train_rows], labels[train_rows].astype(np.float32), args.epochs, SEED + k)
        out_of_fold[test_rows] = scores(net, images[test_rows])
        for line in summary([e for e, t in zip(index, test_rows) if t], out_of_fold[test_rows], args.threshold):
            print(line)
        print(f'  {time.time() - started:.0f} s', flush=True)
    tested = ~np.isnan(out_of_fold)
    print(f'\nout of fold (every person with a face scored by a network that never saw them), threshold {args.threshold}:')
    for line in summary([e for e, t in zip(index, tested) if t], out_of_fold[tested], args.threshold):
        print(line)
    per_head = {}
    for e, s in zip(index, out_of_fold):
        if e['variant'] == 'original' and e['level'] == 'skin' and (e['yaw'], e['pitch']) in DEFAULT_VIEWS and not np.isnan(s):
            per_head.setdefault(e['head'], []).append(s)
    print('\n  original default views with a face, per head (out of fold):')
    for head, s in sorted(per_head.items()):
        print(f'    {head:28s} {sum(v >= args.threshold for v in s)}/{len(s)}  lowest {min(s):.3f}')
    worst = max((s, e['head'], e['variant'], e['level'], e['yaw'], e['pitch']) for e, s in zip(index, out_of_fold) if not np.isnan(s) and e['label'] == 0)
    print(f'  highest out-of-fold score on a render without a face: {worst[0]:.3f} ({worst[1]} {worst[2]} {worst[3]} yaw {worst[4]} pitch {worst[5]})')

    print('\nthe shipped network: trained on every labelled render', flush=True)
    final_rows = labels >= 0
    net = train(images[final_rows], labels[final_rows].astype(np.float32), args.epochs, SEED + 100)
    partial = np.array([e['label'] < 0 for e in index])
    partial_scores = scores(net, images[partial])
    print('  partial faces (never trained on): original and cut copies, default views at the skin level with a score >= threshold:')
    for head in sorted({e['head'] for e in index if e['label'] < 0}):
        for variant in ('original', 'nose-tip-cut'):
            picked = [s for s, e in zip(partial_scores, [e for e in index if e['label'] < 0]) if e['head'] == head and e['variant'] == variant and e['level'] == 'skin' and (e['yaw'], e['pitch']) in DEFAULT_VIEWS]
            print(f'    {head:28s} {variant:14s} {sum(v >= args.threshold for v in picked)}/{len(picked)}')
    model = Probability(net).eval()
    torch.onnx.export(model, torch.zeros(1, 1, SIZE, SIZE), args.out, input_names=['render'], output_names=['face'],
                      dynamic_axes={'render': {0: 'views'}, 'face': {0: 'views'}}, opset_version=17)
    print(f'wrote {args.out} ({os.path.getsize(args.out)} bytes), {time.time() - started:.0f} s in all')


if __name__ == '__main__':
    main()
