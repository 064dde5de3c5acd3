"""Do a model's samples read as their category? An automatic judge, as later papers use one:
small CNNs trained on real Quick, Draw! training drawings, rendered by the study's own renderer
(256 px, then shrunk to 32 px), their votes averaged. Its classes are the checkpoints' categories
and "other": every other category on the data search path (unless --no-other), so that a drawing
of none of them is not forced into one.

Per category it prints how often the judge recognises the real test drawings (held out from its
training: the ceiling a model's samples are judged against), then per temperature the share of
samples it recognises, that share over the real one (the goal: at least 0.9), and the share of
samples that are empty or never end (the goal: at most 2%). The recommended temperature is fixed
by a rule before any result is seen: the one of --temperatures whose worst category's ratio is
highest among those with no category above 2% degenerate samples. A judge is no participant: it
checks shapes, not whether a sketch looks drawn by a person.

    QUICKDRAW_DATA_DIR=quickdraw:quickdraw_spg:quickdraw_mini/npz \
        python benchmarks/recognition.py fixtures/ten/*.pt [--n 200] [--temperatures 0.1,0.2,0.3,0.5,0.8]
"""

import argparse
import io
import os
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import model_samples, model_test_drawings
from PIL import Image

from generator.checkpoint import CheckpointError, load_model
from generator.data import available_categories, data_folders, load_category
from generator.render import sketch_png
from generator.sample import is_degenerate

SIZE = 32  # pixels the judge sees
PER_CATEGORY = {"train": 2000, "test": 250}  # drawings read of each category (the official files hold 70000 / 2500)
GOAL_RATIO, GOAL_DEGENERATE = 0.9, 0.02


def raster(stroke3):
    """The participants' PNG, shrunk to SIZE x SIZE, ink 1 and paper 0."""
    image = Image.open(io.BytesIO(sketch_png(np.asarray(stroke3)))).resize((SIZE, SIZE), Image.BOX)
    return 1 - np.asarray(image, dtype=np.float32) / 255


def rasters(drawings, pool):
    return torch.from_numpy(np.stack(pool.map(raster, drawings, chunksize=64)))[:, None]


class Judge(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1),
                                    nn.Conv2d(64, 128, 3, padding=1)])
        self.hidden = nn.Linear(128 * (SIZE // 8) ** 2, 256)
        self.out = nn.Linear(256, classes)

    def forward(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.out(F.dropout(F.relu(self.hidden(x.flatten(1))), 0.3, self.training))


def train_judge(images, labels, classes, epochs, seed=0):
    """Adam on shuffled mini-batches, with each class weighted by the inverse of its count."""
    torch.manual_seed(seed)
    judge = Judge(classes)
    optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
    weights = len(labels) / (classes * torch.bincount(labels, minlength=classes).float())
    for _ in range(epochs):
        judge.train()
        for batch in torch.randperm(len(labels)).split(128):
            x = images[batch]
            x = torch.where(torch.rand(len(batch), 1, 1, 1) < 0.5, x.flip(3), x)  # a mirrored pig is a pig
            loss = F.cross_entropy(judge(x), labels[batch], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return judge.eval()


@torch.no_grad()
def predict(judges, images):
    """The class of each image by the judges' mean probabilities: one judge's verdicts on samples
    move by about 10 points with its training seed; several agree better."""
    return torch.cat([torch.stack([judge(batch).softmax(1) for judge in judges]).mean(0).argmax(1)
                      for batch in images.split(512)])


def load_classes(search_path, categories, other):
    """{split: (drawings, labels)} and the class names: the categories, then "other" if asked for.
    Every drawing of a class comes from the training (or test) splits of the search path."""
    names = list(categories)
    sources = [(name, k) for k, name in enumerate(names)]
    if other:
        others = [c for c in available_categories(data_folders(search_path)) if c not in names]
        if not others:
            raise SystemExit("the data search path holds no other categories (pass --no-other)")
        sources += [(name, len(names)) for name in others]
        names.append("other")
    drawings = {split: [] for split in PER_CATEGORY}
    labels = {split: [] for split in PER_CATEGORY}
    for category, label in sources:
        splits = load_category(category, search_path, splits=list(PER_CATEGORY))
        for split, limit in PER_CATEGORY.items():
            part = splits[split][:limit]
            drawings[split] += part
            labels[split] += [label] * len(part)
    return {split: (drawings[split], torch.tensor(labels[split])) for split in PER_CATEGORY}, names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="one single-category checkpoint per category")
    parser.add_argument("--data-dir", default=os.environ.get("QUICKDRAW_DATA_DIR"),
                        help="data search path dir1:dir2 (default QUICKDRAW_DATA_DIR)")
    parser.add_argument("--no-other", action="store_true", help='no class "other"')
    parser.add_argument("--n", type=int, default=200, help="samples per checkpoint and temperature")
    parser.add_argument("--temperatures", default="0.1,0.2,0.3,0.5,0.8")
    parser.add_argument("--mode", choices=["unconditional", "conditional"], default="unconditional",
                        help="conditional: each sample decodes the code of one of the model's test drawings")
    parser.add_argument("--epochs", type=int, default=8, help="the judge's training epochs")
    parser.add_argument("--judges", type=int, default=3, help="judges trained with seeds S, S+1, ... whose votes are averaged")
    parser.add_argument("--seed", type=int, default=0, help="S: the seed of the samples and of the first judge "
                        "(another S checks a result on fresh samples and judges)")
    args = parser.parse_args()
    if not args.data_dir:
        raise SystemExit("set QUICKDRAW_DATA_DIR or --data-dir to the data search path")
    temperatures = [float(t) for t in args.temperatures.split(",")]
    try:  # a bad file fails now, not after the judges' training
        models = {path: load_model(path, "cpu") for path in args.checkpoints}
    except CheckpointError as e:
        raise SystemExit(str(e)) from None
    by_category = {}
    for path, (model, payload) in models.items():
        if len(model.config.categories) != 1:
            raise SystemExit(f"{path}: trained on {', '.join(model.config.categories)}; give single-category checkpoints")
        by_category[model.config.categories[0]] = (path, model, payload)
    start = time.perf_counter()
    with Pool() as pool:
        splits, names = load_classes(args.data_dir, list(by_category), not args.no_other)
        train_images, test_images = (rasters(splits[s][0], pool) for s in ("train", "test"))
        judges = [train_judge(train_images, splits["train"][1], len(names), args.epochs, seed)
                  for seed in range(args.seed, args.seed + args.judges)]
        guesses = predict(judges, test_images)
        test_labels = splits["test"][1]
        print(f"judges: {len(names)} classes, {len(train_images)} training drawings, {args.judges} judges of "
              f"{args.epochs} epochs (seeds {args.seed} to {args.seed + args.judges - 1}), {time.perf_counter() - start:.0f} s; "
              f"{args.n} {args.mode} samples per cell, seed {args.seed}")
        real = {name: float((guesses[test_labels == k] == k).float().mean()) for k, name in enumerate(names)}
        if "other" in real:
            print(f"real test drawings of other categories recognised as other: {real['other']:.1%}")
        results = {}  # (category, temperature) -> (recognised, degenerate)
        print(f"\n{'category':12s} {'real':>6s}" + "".join(f" | tau {t:<4} recog ratio degen" for t in temperatures))
        for category, (path, model, payload) in by_category.items():
            if args.mode == "conditional" and not model.config.conditional:
                raise SystemExit(f"{path}: a decoder without an encoder has no conditional samples")
            drawings = model_test_drawings(model, payload, args.data_dir) if args.mode == "conditional" else None
            row = f"{category:12s} {real[category]:6.1%}"
            for temperature in temperatures:
                samples = model_samples(model, payload, args.n, temperature, drawings, seed=args.seed)
                drawn = [s for s in samples.strokes if len(s)]
                counts = torch.bincount(predict(judges, rasters(drawn, pool)), minlength=len(names)) if drawn else None
                recognised = float(counts[names.index(category)]) / args.n if drawn else 0.0
                degenerate = float(np.mean([is_degenerate(s, e) for s, e in zip(samples.strokes, samples.ended)]))
                results[category, temperature] = (recognised, degenerate)
                row += f" | {recognised:14.1%} {recognised / real[category]:5.2f} {degenerate:5.1%}"
            print(row)
    report(results, real, list(by_category), temperatures)


def report(results, real, categories, temperatures):
    """The goals per temperature, and the recommended temperature by the rule in the docstring."""
    print()
    eligible = []
    for t in temperatures:
        ratios = {c: results[c, t][0] / real[c] for c in categories}
        missed = [f"{c} {ratios[c]:.2f}" for c in categories if ratios[c] < GOAL_RATIO]
        degenerate = [f"{c} {results[c, t][1]:.1%}" for c in categories if results[c, t][1] > GOAL_DEGENERATE]
        print(f"tau {t}: worst ratio {min(ratios.values()):.2f}; below {GOAL_RATIO} of real: {', '.join(missed) or 'none'}; "
              f"above {GOAL_DEGENERATE:.0%} degenerate: {', '.join(degenerate) or 'none'}")
        if not degenerate:
            eligible.append((min(ratios.values()), t))
    if eligible:
        print(f"recommended temperature: {max(eligible)[1]}")
    else:
        print(f"no temperature keeps every category at {GOAL_DEGENERATE:.0%} degenerate samples or fewer")


if __name__ == "__main__":
    main()
