"""Argument types shared by the subcommands: a bad value is refused by argparse itself (one
line naming the option, exit status 2) instead of failing later inside the computation."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1 (frame counts, image sizes, strides)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer >= 1, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected an integer >= 1, got {value}')
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (rates, timeouts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number > 0, got {text!r}') from None
    if not 0 < value < float('inf'):
        raise argparse.ArgumentTypeError(f'expected a finite number > 0, got {text}')
    return value
