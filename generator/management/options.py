"""The command-line options that the generator's commands share, and their checks."""

from dataclasses import fields

from django.core.management.base import CommandError


def add_data_dir_argument(parser):
    parser.add_argument("--data-dir", default=None, help="data search path: folders of <category>.npz or .ndjson "
                        "files, dir1:dir2 as PATH (default QUICKDRAW_DATA_DIR)")


def add_device_argument(parser):
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda when present")


def add_temperature_rule_argument(parser):
    from generator.sample import TEMPERATURE_RULES  # torch: only for the commands that sample

    parser.add_argument("--temperature-rule", choices=TEMPERATURE_RULES, default="paper",
                        help="how the temperature narrows each normal: paper (sigma x sqrt(tau), as the paper and the "
                             "reference's JS version) or magenta (sigma x tau, as the reference's TensorFlow code); "
                             "default paper")


def parse_categories(value):
    categories = [c.strip() for c in value.split(",") if c.strip()]
    if not categories:
        raise CommandError("--categories needs at least one category, e.g. --categories pig,face")
    # Each names a file <category>.npz in the data folder: never a path out of it.
    odd = [c for c in categories if "/" in c or "\\" in c or c.startswith(".")]
    if odd:
        raise CommandError(f"--categories: {', '.join(odd)} is not a category name (no '/', '\\' or leading '.')")
    repeated = sorted({c for c in categories if categories.count(c) > 1})
    if repeated:
        raise CommandError(f"--categories names {', '.join(repeated)} more than once")
    return categories


def check_seed(seed):
    """Seeds are stored in 64-bit signed database columns and given to numpy, which refuses negatives."""
    if not 0 <= seed < 2**63:
        raise CommandError(f"--seed must be between 0 and {2**63 - 1}")


VALUE_KINDS = {int: "an integer", float: "a number", str: "a word"}


def parse_overrides(assignments):
    """--set's ["recurrent_dropout=0.2", ...] -> {"recurrent_dropout": 0.2, ...}, typed as Config's fields;
    "faithful=true" asks make_config for the reference's settings (model.REFERENCE), which the other keys override."""
    from generator.model import Config  # torch: only for the commands that take --set

    types = {"faithful": bool, **{f.name: f.type for f in fields(Config) if f.name != "categories"}}
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or key not in types:
            raise ValueError(f"cannot set '{assignment}': use KEY=VALUE with KEY one of {', '.join(types)}")
        kind = types[key]
        if kind is bool:
            if text not in ("true", "false"):
                raise ValueError(f"cannot set '{assignment}': {key} takes true or false")
            value = text == "true"
        else:
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"cannot set '{assignment}': {key} takes {VALUE_KINDS[kind]}") from None
        overrides[key] = value
    return overrides
