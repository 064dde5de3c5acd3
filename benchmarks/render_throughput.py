"""PNGs rendered per second on one core (goal: at least 100/s).

    python benchmarks/render_throughput.py
"""

import os
import time

from _common import data_dir

from generator.data import load_category
from generator.render import sketch_png


def main():
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    folder, categories = data_dir()
    drawings = [d for c in categories for d in load_category(c, folder)["test"]][:400]
    sketch_png(drawings[0])
    start = time.perf_counter()
    sizes = [len(sketch_png(d)) for d in drawings]
    seconds = time.perf_counter() - start
    print(f"rendered {len(drawings)} sketches in {seconds:.2f} s on one core: {len(drawings) / seconds:.0f} PNG/s "
          f"(goal 100/s), mean size {sum(sizes) / len(sizes) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
