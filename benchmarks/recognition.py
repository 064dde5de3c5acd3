"""Do a model's samples read as their category? An automatic judge, as later papers use one:
small CNNs trained on real Quick, Draw! drawings, rendered by the study's own renderer (256 px,
then shrunk to 32 px), their votes averaged. Their classes are the categories of
QUICKDRAW_DATA_DIR and, with --other-dir, "other": every category in that folder that is not one
of them, so that a drawing of none of them is not forced into one.

It prints how often the judge recognises the real test drawings of each category (held out from
its training: the ceiling a model's samples can be judged against), then, per checkpoint and
temperature, the share of samples it recognises as the model's category, and where the rest went.
Compare models within one run: the shares move by a few points with the judge's training. A judge
is no participant: it checks shapes, not whether a sketch looks drawn by a person; it is a
repeatable complement to looking at the samples, not a substitute.

    python benchmarks/recognition.py fixtures/checkpoints/pig.pt fixtures/models/alarm_clock.pt \
        [--other-dir FOLDER] [--n 500] [--temperatures 0.2,0.5,0.8] [--mode conditional]
"""

import argparse
import io
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import data_dir, model_samples, model_test_drawings
from PIL import Image

from generator.checkpoint import CheckpointError, load_model
from generator.data import load_npz
from generator.render import sketch_png

SIZE = 32  # pixels the judge sees
PER_FILE = {"train": 2000, "test": 250}  # drawings read from each file (the official ones hold 70000 / 2500)


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


def load_classes(folder, categories, other_dir):
    """{split: (drawings, labels)} and the class names: the categories, then "other" if any."""
    names = list(categories)
    sources = [(folder / f"{name}.npz", k) for k, name in enumerate(names)]
    if other_dir:
        others = sorted(p for p in Path(other_dir).glob("*.npz") if p.stem not in names)
        if not others:
            raise SystemExit(f"{other_dir} has no .npz files of other categories")
        sources += [(path, len(names)) for path in others]
        names.append("other")
    drawings = {split: [] for split in PER_FILE}
    labels = {split: [] for split in PER_FILE}
    for path, label in sources:
        data = load_npz(path)  # read each file once, for both splits
        for split, limit in PER_FILE.items():
            part = data[split][:limit]
            drawings[split] += part
            labels[split] += [label] * len(part)
    return {split: (drawings[split], torch.tensor(labels[split])) for split in PER_FILE}, names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--other-dir", help='folder of sketch-rnn .npz files of other categories, the class "other"')
    parser.add_argument("--n", type=int, default=500, help="samples per checkpoint and temperature")
    parser.add_argument("--temperatures", default="0.2,0.5,0.8")
    parser.add_argument("--mode", choices=["unconditional", "conditional"], default="unconditional",
                        help="conditional: each sample decodes the code of one of the model's test drawings")
    parser.add_argument("--epochs", type=int, default=8, help="the judge's training epochs")
    parser.add_argument("--judges", type=int, default=3, help="judges trained with seeds 0, 1, ... whose votes are averaged")
    args = parser.parse_args()
    temperatures = [float(t) for t in args.temperatures.split(",")]
    folder, categories = data_dir()
    try:  # a bad file fails now, not after the judges' training
        models = {path: load_model(path, "cpu") for path in args.checkpoints}
    except CheckpointError as e:
        raise SystemExit(str(e)) from None
    start = time.perf_counter()
    with Pool() as pool:
        splits, names = load_classes(folder, categories, args.other_dir)
        train_images, test_images = (rasters(splits[s][0], pool) for s in ("train", "test"))
        judges = [train_judge(train_images, splits["train"][1], len(names), args.epochs, seed)
                  for seed in range(args.judges)]
        guesses = predict(judges, test_images)
        print(f"judges: {len(names)} classes ({', '.join(names)}), {len(train_images)} training drawings, "
              f"{args.judges} judges of {args.epochs} epochs, {time.perf_counter() - start:.0f} s")
        test_labels = splits["test"][1]
        for k, name in enumerate(names):
            print(f"  real test {name:12s} recognised {(guesses[test_labels == k] == k).float().mean():6.1%} "
                  f"of {int((test_labels == k).sum())}")

        print(f"\n{args.n} {args.mode} samples per row; recognised as the model's category, else taken for:")
        for path, (model, payload) in models.items():
            category = model.config.categories[0]
            if len(model.config.categories) != 1 or category not in names:
                print(f"{path}: skipped (its categories {', '.join(model.config.categories)} "
                      f"are not one of the judge's)")
                continue
            if args.mode == "conditional" and not model.config.conditional:
                print(f"{path}: skipped (a decoder without an encoder has no conditional samples)")
                continue
            drawings = model_test_drawings(model, payload, folder) if args.mode == "conditional" else None
            for temperature in temperatures:
                samples = model_samples(model, payload, args.n, temperature, drawings)
                drawn = [s for s in samples.strokes if len(s)]
                counts = torch.bincount(predict(judges, rasters(drawn, pool)), minlength=len(names))
                rest = ", ".join(f"{names[k]} {counts[k] / args.n:.0%}" for k in range(len(names))
                                 if names[k] != category and counts[k])
                print(f"{path[-28:]:28s} tau {temperature:.1f}  {counts[names.index(category)] / args.n:6.1%}"
                      f"  ({rest}{', ' if rest else ''}empty {1 - len(drawn) / args.n:.0%})")


if __name__ == "__main__":
    main()
