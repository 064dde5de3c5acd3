"""Checks of the command-line options that the generator's commands share."""

from django.core.management.base import CommandError


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
