"""Load + preprocess time per category, and the padding fraction of batches of 100 with and
without length bucketing.

    python benchmarks/data_pipeline.py
"""

import time

import numpy as np
from _common import data_dir

from generator.data import BucketBatcher, load_sketch_data, padding_fraction


def main():
    folder, categories = data_dir()
    total = 0.0
    for category in categories:
        start = time.perf_counter()
        data = load_sketch_data([category], folder)
        seconds = time.perf_counter() - start
        total += seconds
        sizes = "/".join(str(len(data.splits[s])) for s in ("train", "valid", "test"))
        print(f"{category:12s} load + validate + preprocess {seconds * 1000:7.1f} ms  ({sizes} drawings, "
              f"scale factor {data.scale_factor:.2f}, n_max {data.n_max})")
    print(f"{'all':12s} {total * 1000:7.1f} ms")

    data = load_sketch_data(categories, folder)
    lengths = np.array([len(d) for d in data.splits["train"]])
    for bucketed in (False, True):
        batcher = BucketBatcher(lengths, 100, seed=0, bucketed=bucketed)
        batches = [lengths[batcher.next()] for _ in range(len(lengths) // 100)]
        to_batch_max = padding_fraction(batches, [b.max() + 1 for b in batches])
        to_data_max = padding_fraction(batches, [data.n_max] * len(batches))
        print(f"padding fraction at batch 100, {'bucketed' if bucketed else 'shuffled'}: "
              f"{to_batch_max:.1%} (padded to each batch's longest + 1), "
              f"{to_data_max:.1%} if padded to the data's longest drawing")


if __name__ == "__main__":
    main()
