"""Screenshots compared with the committed ones in tests/data/screenshots/ (importable as ``screenshots``).

A test takes its picture into its tmp_path and calls ``check(taken, name, tmp_path)``. The picture must have
the committed one's size; a pixel *differs* when a colour channel is more than ``THRESHOLD`` (of 255) away.
At most ``MAX_SHARE`` of all pixels may differ, and no ``TILE`` x ``TILE`` square may have more than
``MAX_TILE_SHARE`` of its pixels differ: anti-aliasing moves a few edge pixels a little, here and there; a
changed colour or a moved block changes many pixels, and a changed word or number changes a small square a
lot. On a mismatch the test fails naming the file, and leaves the new picture and a difference image (the
differing pixels in white) to look at.

``UPDATE_SCREENSHOTS=1`` writes the pictures taken as the new references instead (look at them before
committing): ``UPDATE_SCREENSHOTS=1 python -m pytest tests/test_preview_browser.py tests/web/test_e2e_browser.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image, ImageChops
from support import DATA

SHOTS = DATA / "screenshots"
THRESHOLD = 48  # a channel difference above this is a real difference, not anti-aliasing
MAX_SHARE = 0.001  # at most 0.1% of the pixels may differ that much
TILE = 16
MAX_TILE_SHARE = 0.1  # and at most 10% of any 16 x 16 square (a changed digit fills more)
UPDATE_HINT = ("if the change is intended, look at the new picture and run "
               "UPDATE_SCREENSHOTS=1 python -m pytest tests/test_preview_browser.py tests/web/test_e2e_browser.py "
               "tests/web/test_admin_browser.py")


def updating() -> bool:
    return os.environ.get("UPDATE_SCREENSHOTS") == "1"


def difference(taken: Path, reference: Path) -> tuple[float, Image.Image | None, str]:
    """(share of pixels that differ beyond ``THRESHOLD``, a difference image, what differs)."""
    with Image.open(taken) as a_file, Image.open(reference) as b_file:
        a, b = a_file.convert("RGB"), b_file.convert("RGB")
    if a.size != b.size:
        return 1.0, None, f"its size is {a.size[0]}x{a.size[1]} px, the committed one's {b.size[0]}x{b.size[1]} px"
    r, g, bl = ImageChops.difference(a, b).split()
    most = ImageChops.lighter(ImageChops.lighter(r, g), bl)  # per pixel: the largest channel difference
    histogram = most.histogram()
    differing = sum(histogram[THRESHOLD + 1:])
    share = differing / (a.size[0] * a.size[1])
    mask = most.point(lambda v: 255 if v > THRESHOLD else 0)
    what = f"{differing:,} of {a.size[0] * a.size[1]:,} pixels ({share:.2%}) differ by more than {THRESHOLD}"
    worst_tile = mask.reduce(TILE).getextrema()[1] / 255  # box average: the share of each square that differs
    if worst_tile > MAX_TILE_SHARE:
        share = max(share, 1.0)
        what += f", {worst_tile:.0%} of one {TILE}x{TILE} square (at most {MAX_TILE_SHARE:.0%} may)"
    return share, mask, what


def check(taken: Path, name: str, tmp_path: Path) -> None:
    """Fail unless ``taken`` looks like the committed ``tests/data/screenshots/<name>`` (or write it, when updating)."""
    assert taken.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{taken} is not a PNG"
    reference = SHOTS / name
    if updating():
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(taken, reference)
        return
    assert reference.is_file(), f"no committed screenshot tests/data/screenshots/{name}: {UPDATE_HINT}"
    share, mask, what = difference(taken, reference)
    if share <= MAX_SHARE:
        return
    kept = tmp_path / f"new-{name}"
    shutil.copy(taken, kept)
    where = f"the new picture is {kept}"
    if mask is not None:
        mask.save(tmp_path / f"diff-{name}")
        where += f", the differing pixels (white) are in {tmp_path / f'diff-{name}'}"
    raise AssertionError(f"screenshot {name} differs from tests/data/screenshots/{name}: {what} "
                         f"(at most {MAX_SHARE:.1%} of all may); {where}; {UPDATE_HINT}")
