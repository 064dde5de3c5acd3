"""Sketch data: loading the official sketch-rnn Quick, Draw! files safely, fetching them,
preprocessing as the reference implementation does, augmentation, and length-bucketed batches.

The official files are `<category>.npz` with `train`, `valid` and `test` keys, each a 1-D object
array of stroke-3 int16 drawings. Object arrays are pickles; they are read here with an
unpickler that can only rebuild numpy arrays, so a malicious file cannot run code. A file may also
name its drawings: `<split>_key_id`, a string array beside each split (the official files do not;
the study's export_drawings does, as Quick, Draw!'s ndjson files do with their key_id field).
"""

import io
import json
import os
import pickle
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_write
from .strokes import (START_TOKEN, lines_to_stroke3, ndjson_to_lines, raw_to_stroke3, simplify_stroke3,
                      stroke3_to_stroke5)

SPLITS = ("train", "valid", "test")
OFFSET_LIMIT = 1000  # the reference clamps offsets to +-1000 before normalising


class SketchDataError(Exception):
    """A sketch data file is missing, unreadable or not what it claims to be."""


# ---------------------------------------------------------------------------------------------
# Safe loading and validation


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: any other global in the pickle is refused."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        target = self._allowed.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are allowed")
        import importlib

        return getattr(importlib.import_module(target[0]), target[1])


def _read_npy_member(archive, member):
    """One .npy member of an npz archive; object arrays go through the restricted unpickler."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = header(f)
        if not dtype.hasobject:
            raw = f.read()
            count = int(np.prod(shape))
            if len(raw) != count * dtype.itemsize:
                raise ValueError("truncated array data")
            return np.frombuffer(raw, dtype=dtype).reshape(shape)
        array = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    if not isinstance(array, np.ndarray):
        raise ValueError("object array did not unpickle to a numpy array")
    return array


def validate_drawing(drawing):
    """The problem with one stroke-3 drawing as a sentence, or None if it is sound."""
    if not isinstance(drawing, np.ndarray):
        return f"is a {type(drawing).__name__}, not an array"
    if drawing.ndim != 2 or drawing.shape[1] != 3:
        return f"has shape {drawing.shape}, expected (N, 3)"
    if len(drawing) == 0:
        return "is empty"
    if not (np.issubdtype(drawing.dtype, np.integer) or np.issubdtype(drawing.dtype, np.floating)):
        return f"has dtype {drawing.dtype}, expected numbers"
    if not np.all(np.isfinite(drawing)):
        return "holds NaN or infinite values"
    if not np.all(np.isin(drawing[:, 2], (0, 1))):
        return "has pen bits other than 0 and 1"
    if drawing[-1, 2] != 1:
        return "does not lift the pen on its last point"
    return None


def key_member(split):
    """The npz member that names the drawings of `split`, if a file has it."""
    return f"{split}_key_id"


def load_npz(path, with_keys=False):
    """{split: list of (N, 3) arrays} from a sketch-rnn npz, every drawing validated. With
    `with_keys`, also {split: key_id per drawing} (None for each where the file names none).

    Raises SketchDataError naming the file and the problem; never unpickles anything but
    numpy arrays.
    """
    path = Path(path)
    if not path.exists():
        raise SketchDataError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise SketchDataError(f"{path}: not a readable npz file ({e})") from None
    splits, keys = {}, {}
    with archive:
        names = {name.removesuffix(".npy"): name for name in archive.namelist()}
        missing = [s for s in SPLITS if s not in names]
        if missing:
            raise SketchDataError(f"{path}: missing split(s) {', '.join(missing)} (has: {', '.join(sorted(names)) or 'nothing'})")
        for split in SPLITS:
            try:
                array = _read_npy_member(archive, names[split])
            except Exception as e:  # zlib, EOF, bad header, refused pickle: all mean a bad file
                raise SketchDataError(f"{path}: split '{split}' cannot be read ({type(e).__name__}: {e})") from None
            if array.ndim != 1:
                raise SketchDataError(f"{path}: split '{split}' has shape {array.shape}, expected a 1-D array of drawings")
            drawings = list(array)
            for i, drawing in enumerate(drawings):
                problem = validate_drawing(drawing)
                if problem:
                    raise SketchDataError(f"{path}: drawing {i} of split '{split}' {problem}")
            splits[split] = drawings
            if with_keys:
                keys[split] = _read_keys(path, archive, names.get(key_member(split)), split, len(drawings))
    return (splits, keys) if with_keys else splits


def _read_keys(path, archive, member, split, count):
    if member is None:
        return [None] * count
    try:
        array = _read_npy_member(archive, member)
    except Exception as e:
        raise SketchDataError(f"{path}: '{key_member(split)}' cannot be read ({type(e).__name__}: {e})") from None
    if array.dtype.kind != "U" or array.shape != (count,):
        raise SketchDataError(f"{path}: '{key_member(split)}' is not one string per drawing of split '{split}' "
                              f"({array.dtype}, shape {array.shape}; the split has {count})")
    return [str(key) for key in array]


def save_npz(file, splits, keys=None):
    """Write {split: stroke-3 drawings} to an open binary `file` in the sketch-rnn layout (int16
    drawings in 1-D object arrays, as load_npz reads them), with {split: key ids} if given."""
    arrays = {}
    for split in SPLITS:
        # Filled one by one: np.array() would make a 3-D array of drawings that share a length.
        drawings = np.empty(len(splits[split]), dtype=object)
        for i, drawing in enumerate(splits[split]):
            drawings[i] = np.asarray(drawing, dtype=np.int16)
        arrays[split] = drawings
        if keys is not None:
            arrays[key_member(split)] = np.array(keys[split], dtype=str)
    np.savez_compressed(file, **arrays)


def load_ndjson(path, simplify_raw=None, with_keys=False):
    """stroke-3 drawings from a Quick, Draw! ndjson file (with `with_keys`, (key_id, drawing) pairs).

    Simplified files (integer 0-255 strokes) are converted as they are; raw files (with
    timestamps) are simplified first the way the dataset documents it. `simplify_raw=None`
    decides per drawing by the presence of timestamps. Drawings with no points are skipped.
    """
    drawings = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                strokes = record["drawing"]
                raw = len(strokes[0]) == 3 if simplify_raw is None else simplify_raw
                drawing = raw_to_stroke3(strokes) if raw else lines_to_stroke3(ndjson_to_lines(strokes))
                problem = validate_drawing(drawing) if len(drawing) else None
                if problem:
                    raise ValueError(f"its drawing {problem}")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
                raise SketchDataError(f"{path}: line {number} is not a Quick, Draw! drawing ({e})") from None
            if len(drawing):
                drawing = drawing.astype(np.int16)
                drawings.append((record.get("key_id"), drawing) if with_keys else drawing)
    return drawings


# ---------------------------------------------------------------------------------------------
# The data search path: folders of category files


def data_folders(search_path, must_exist=True):
    """The folders of a data search path: "dir1:dir2" as PATH spells it, or a list. Each folder
    must exist, unless `must_exist` is off (fetch_sketches creates the first)."""
    parts = search_path if isinstance(search_path, (list, tuple)) else str(search_path).split(os.pathsep)
    folders = [Path(p) for p in parts if str(p)]
    if not folders:
        raise SketchDataError("the data search path names no folder")
    if must_exist:
        absent = [str(f) for f in folders if not f.is_dir()]
        if absent:
            raise SketchDataError(
                f"data folder {', '.join(absent)} does not exist (search path: {os.pathsep.join(map(str, folders))}). "
                "Fix QUICKDRAW_DATA_DIR or --data-dir, or run `python manage.py fetch_sketches` to fill the first folder."
            )
    return folders


def category_file(category, data_dir):
    """Where fetch_sketches keeps a category: <category>.npz."""
    return Path(data_dir) / f"{category}.npz"


def category_url(category, url_template):
    return url_template.format(category=urllib.request.quote(category))


NDJSON_SPLIT = {"train": range(0, 8), "valid": (8,), "test": (9,)}  # of ten buckets by key_id


def ndjson_split(key):
    """The split of an ndjson drawing with this key_id."""
    bucket = zlib.crc32(str(key).encode()) % 10
    return next(split for split, buckets in NDJSON_SPLIT.items() if bucket in buckets)


def load_ndjson_splits(path, with_keys=False):
    """{split: drawings} of a Quick, Draw! ndjson file: 80/10/10 by a hash of each drawing's key_id
    (its line number where it has none), so a drawing keeps its split as the file grows. With
    `with_keys`, also {split: key_id per drawing}."""
    splits, keys = {s: [] for s in SPLITS}, {s: [] for s in SPLITS}
    for number, (key, drawing) in enumerate(load_ndjson(path, with_keys=True)):
        split = ndjson_split(key if key is not None else number)
        splits[split].append(drawing)
        keys[split].append(None if key is None else str(key))
    return (splits, keys) if with_keys else splits


def find_category_files(category, folders):
    """Every file of `category` along the search path: <category>.npz or <category>.ndjson in each folder."""
    found = []
    for folder in folders:
        here = [path for path in (folder / f"{category}.npz", folder / f"{category}.ndjson") if path.is_file()]
        if len(here) > 1:
            raise SketchDataError(f"{folder} holds both {category}.npz and {category}.ndjson; keep one of them")
        found.extend(here)
    if not found:
        raise SketchDataError(
            f"no data for category '{category}': no {category}.npz or {category}.ndjson in "
            f"{', '.join(str(f) for f in folders)}. Run `python manage.py fetch_sketches --categories {category}` "
            f"or set QUICKDRAW_DATA_DIR (or --data-dir) to folders that hold it."
        )
    return found


def read_category_file(path):
    """({split: drawings}, {split: key_id per drawing, None where the file names none}) of one file."""
    return load_ndjson_splits(path, with_keys=True) if path.suffix == ".ndjson" else load_npz(path, with_keys=True)


def available_categories(folders):
    """Every category with a file somewhere on the search path, sorted."""
    return sorted({path.stem for folder in folders for pattern in ("*.npz", "*.ndjson") for path in folder.glob(pattern)})


def offsets_std(drawings):
    """The standard deviation of all dx and dy pooled: the scale of a set of drawings."""
    offsets = np.concatenate([np.asarray(d[:, 0:2], dtype=np.float64).ravel() for d in drawings])
    return float(np.std(offsets))


@dataclass
class SketchFile:
    """One category file of the search path, its drawings brought to the path's common scale."""

    path: Path
    folder: int  # its folder's position on the search path
    category: str
    splits: dict  # split -> drawings, already multiplied by `rescale`
    rescale: float  # the scale rule's factor for this file's folder
    keys: dict  # split -> key_id of each drawing, None where the file names none

    def describe(self):
        return {"file": f"{self.path.parent.name}/{self.path.name}", "category": self.category,
                "rescale": self.rescale, **{s: len(self.splits[s]) for s in SPLITS}}


def load_sketch_files(categories, search_path, simplify_epsilon=0.0, scale_categories=None):
    """Every file of `categories` along the search path, each folder's drawings brought to one scale.

    The scale rule: the drawings of a folder are multiplied by s_first / s_folder, where s is the
    standard deviation of the offsets of that folder's training drawings of `scale_categories`
    (default: `categories`; a trained model's own categories, so that a model sees its data as it
    was trained) and s_first that of the first folder on the path that holds any of them. With one
    folder nothing is rescaled. Only the first folder's scale reaches a model's scale factor.
    """
    folders = data_folders(search_path)
    scale_categories = list(scale_categories or categories)
    wanted = list(dict.fromkeys([*categories, *scale_categories]))
    raw = {category: [(path, read_category_file(path)) for path in find_category_files(category, folders)]
           for category in wanted}
    folder_of = {folder: index for index, folder in enumerate(folders)}
    by_folder = {}
    for category in scale_categories:
        for path, (splits, _) in raw[category]:
            by_folder.setdefault(folder_of[path.parent], []).extend(splits["train"])
    stds = {index: offsets_std(drawings) for index, drawings in sorted(by_folder.items()) if drawings}
    reference = stds[min(stds)] if stds else 1.0
    files = []
    for category in categories:
        for path, (splits, keys) in raw[category]:
            index = folder_of[path.parent]
            rescale = reference / stds[index] if len(stds) > 1 and stds.get(index) else 1.0
            if simplify_epsilon > 0:
                splits = {s: [simplify_stroke3(d, simplify_epsilon) for d in splits[s]] for s in SPLITS}
            if rescale != 1.0:
                splits = {s: [_rescaled(d, rescale) for d in splits[s]] for s in SPLITS}
            files.append(SketchFile(path, index, category, splits, rescale, keys))
    return files


def _rescaled(drawing, factor):
    out = np.asarray(drawing, dtype=np.float32).copy()
    out[:, 0:2] *= factor
    return out


def load_category(category, search_path, simplify_epsilon=0.0, splits=SPLITS, scale_categories=None,
                  with_keys=False):
    """The `splits` of one category from every file on the search path, at the path's common scale
    (see load_sketch_files), with a clear error if no folder holds it. `simplify_epsilon` > 0
    simplifies every drawing (simplify_stroke3, about 1 ms a drawing); indices stay the same.
    With `with_keys`, also {split: key_id of each drawing, None where its file names none}."""
    files = load_sketch_files([category], search_path, simplify_epsilon, scale_categories)
    drawings = {split: [d for f in files for d in f.splits[split]] for split in splits}
    if not with_keys:
        return drawings
    return drawings, {split: [k for f in files for k in f.keys[split]] for split in splits}


def fetch_category(category, data_dir, url_template, progress=None):
    """Download one category's official file into data_dir unless a valid copy is there.

    Returns (path, fetched: bool). The download goes to a temporary file in the same folder
    and is validated before it is renamed into place, so a half file never takes the name.
    `progress(total_bytes)` returns a callable taking byte counts (e.g. a tqdm's update).
    """
    data_dir = Path(data_dir)
    path = category_file(category, data_dir)
    if path.exists():
        try:
            load_npz(path)
            return path, False
        except SketchDataError:
            pass  # a damaged copy is replaced below
    url = category_url(category, url_template)
    data_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(temporary, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                update = progress(total) if progress else None
                while chunk := response.read(1 << 16):
                    try:
                        out.write(chunk)
                    except OSError as e:  # e.g. a full disk: not a network problem
                        raise SketchDataError(f"could not write {path}: {e}") from None
                    if update:
                        update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise SketchDataError(
                f"could not download {path.name} from {url} ({reason}). If this machine is offline, "
                f"put {path.name} into a folder and point QUICKDRAW_DATA_DIR (or --data-dir) at it."
            ) from None
        try:
            load_npz(temporary)
        except SketchDataError as e:
            problem = str(e).removeprefix(f"{temporary}: ")
            raise SketchDataError(f"{url} did not give a valid sketch file ({problem}); {path} was not written") from None
    return path, True


# ---------------------------------------------------------------------------------------------
# Preprocessing as the reference does it


def clamp_and_filter(drawings, max_len):
    """Clamp offsets to +-OFFSET_LIMIT and drop drawings longer than max_len (as float32)."""
    kept = []
    for d in drawings:
        if len(d) <= max_len:
            d = np.asarray(d, dtype=np.float32).copy()
            np.clip(d[:, 0:2], -OFFSET_LIMIT, OFFSET_LIMIT, out=d[:, 0:2])
            kept.append(d)
    return kept


def scale_factor(drawings):
    """One number for the whole training split: the standard deviation of all its dx and dy."""
    return offsets_std(drawings)


def normalise(drawings, factor):
    out = []
    for d in drawings:
        d = d.copy()
        d[:, 0:2] /= factor
        out.append(d)
    return out


@dataclass
class SketchData:
    """Preprocessed splits of one or more categories, normalised by the training scale factor."""

    categories: list
    splits: dict  # split -> list of float32 stroke-3 arrays
    labels: dict  # split -> int array: index into categories for each drawing
    scale_factor: float
    n_max: int  # longest drawing over all splits after filtering (the reference's max_seq_len)
    files: list  # SketchFile.describe() of every file read, with how many drawings of each split it gave


def load_sketch_data(categories, search_path, max_len=250, factor=None, simplify_epsilon=0.0):
    """Load, simplify (if asked), rescale (the search path's scale rule), clamp, filter and
    normalise categories; the scale factor comes from the pooled training split unless given (a
    trained model's own factor must be reused unchanged, as must its simplify_epsilon)."""
    raw = {s: [] for s in SPLITS}
    labels = {s: [] for s in SPLITS}
    files = []
    for sketch_file in load_sketch_files(categories, search_path, simplify_epsilon):
        index = list(categories).index(sketch_file.category)
        described = sketch_file.describe()
        for s in SPLITS:
            kept = clamp_and_filter(sketch_file.splits[s], max_len)
            raw[s].extend(kept)
            labels[s].extend([index] * len(kept))
            described[s] = len(kept)
        files.append(described)
    if not raw["train"]:
        raise SketchDataError(f"no training drawings of at most {max_len} points in {', '.join(categories)}")
    factor = scale_factor(raw["train"]) if factor is None else factor
    n_max = max(len(d) for s in SPLITS for d in raw[s])
    return SketchData(
        categories=list(categories),
        splits={s: normalise(raw[s], factor) for s in SPLITS},
        labels={s: np.asarray(labels[s], dtype=np.int64) for s in SPLITS},
        scale_factor=factor,
        n_max=n_max,
        files=files,
    )



def load_model_data(config, search_path, scale_factor):
    """The data as a trained model saw it: its config's categories, length limit and
    simplification, and its checkpoint's scale factor."""
    return load_sketch_data(config.categories, search_path, config.max_seq_len, factor=scale_factor,
                            simplify_epsilon=config.simplify_epsilon)

# ---------------------------------------------------------------------------------------------
# Augmentation


def random_scale(drawing, rng, amount=0.15):
    """Scale x and y independently by factors drawn from [1 - amount, 1 + amount]."""
    sx, sy = rng.uniform(1 - amount, 1 + amount, size=2)
    out = drawing.copy()
    out[:, 0] *= sx
    out[:, 1] *= sy
    return out


def mirror(drawing, rng, prob=0.0):
    """With probability `prob`, mirror the drawing left to right (negate every x offset).

    Not in the reference; for categories that stay what they are when mirrored (a pig facing
    the other way is still a pig), it doubles the variety of a small training set. Draws from
    `rng` only when prob > 0, so runs without it repeat as before."""
    if prob <= 0 or rng.random() >= prob:
        return drawing
    out = drawing.copy()
    out[:, 0] *= -1
    return out


def drop_points(drawing, rng, prob=0.1):
    """Randomly drop interior points of strokes with probability `prob`, as the reference's
    augment_strokes does: a dropped point's offset is merged into the previous kept point, and
    the first three points of each stroke and every stroke's last point are always kept."""
    if prob <= 0 or len(drawing) < 4:
        return drawing
    lifted = drawing[:, 2] == 1
    prev_lifted = np.concatenate([[True], lifted[:-1]])
    # Position within the run of pen-down points since the last stroke boundary.
    boundary = lifted | prev_lifted
    run_start = np.maximum.accumulate(np.where(boundary, np.arange(len(drawing)), 0))
    count = np.arange(len(drawing)) - run_start
    droppable = ~lifted & ~prev_lifted & (count > 2)
    drop = droppable & (rng.random(len(drawing)) < prob)
    if not drop.any():
        return drawing
    keep = ~drop
    group = np.cumsum(keep) - 1
    out = drawing[keep].copy()
    np.add.at(out[:, 0:2], group[drop], drawing[drop, 0:2])
    return out


# ---------------------------------------------------------------------------------------------
# Batching


def stroke5_batch(drawings, pad_to=None):
    """Stroke-3 drawings -> (B, T + 1, 5) float32 with the start token first, and lengths.

    T = pad_to, or the longest drawing + 1 so every drawing, the longest included, has at
    least one end row to learn from.
    """
    lengths = np.array([len(d) for d in drawings], dtype=np.int64)
    steps = int(lengths.max()) + 1 if pad_to is None else pad_to
    batch = np.empty((len(drawings), steps + 1, 5), dtype=np.float32)
    batch[:, 0] = START_TOKEN
    for i, d in enumerate(drawings):
        batch[i, 1:] = stroke3_to_stroke5(d, steps)
    return batch, lengths


def padding_fraction(batches_lengths, steps_per_batch):
    """Share of the (B x T) cells of the given batches that are padding, not real points."""
    real = sum(int(np.sum(lengths)) for lengths in batches_lengths)
    total = sum(len(lengths) * steps for lengths, steps in zip(batches_lengths, steps_per_batch))
    return 1 - real / total


class BucketBatcher:
    """Endless batches of drawing indices, each batch of drawings of similar length.

    Each epoch sorts the drawings by length plus a little noise (so batch membership varies)
    and cuts them into batches, whose order is shuffled. The state is two numpy generators'
    states and a position, so a resumed run draws exactly the batches it would have drawn.
    """

    def __init__(self, lengths, batch_size, seed, noise=8.0, bucketed=True):
        self.lengths = np.asarray(lengths)
        self.batch_size = min(batch_size, len(self.lengths))
        self.noise = noise
        self.bucketed = bucketed
        self.rng = np.random.default_rng(seed)
        self.epoch_state = self.rng.bit_generator.state
        self.position = 0
        self.batches = self._epoch_batches()

    def _epoch_batches(self):
        n = len(self.lengths)
        if self.bucketed:
            key = self.lengths + self.rng.uniform(0, self.noise, size=n)
            order = np.argsort(key, kind="stable")
        else:
            order = self.rng.permutation(n)
        usable = n - n % self.batch_size
        batches = order[:usable].reshape(-1, self.batch_size)
        return batches[self.rng.permutation(len(batches))]

    def next(self):
        if self.position == len(self.batches):
            self.epoch_state = self.rng.bit_generator.state
            self.batches = self._epoch_batches()
            self.position = 0
        batch = self.batches[self.position]
        self.position += 1
        return batch

    def state(self):
        return {"epoch_state": self.epoch_state, "position": self.position}

    def restore(self, state):
        self.rng.bit_generator.state = state["epoch_state"]
        self.epoch_state = state["epoch_state"]
        self.batches = self._epoch_batches()
        position = state["position"]
        if not (isinstance(position, int) and 0 <= position <= len(self.batches)):
            raise ValueError(f"batch position {position!r} is not one of this epoch's {len(self.batches)} batches")
        self.position = position
