"""The screenshot comparison (``screenshots.check``): noise passes, a real change fails and says how to update."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import screenshots
from PIL import Image, ImageDraw


def page_picture(path: Path, *, heading: str = "#1d4ed8", noise: int = 0, height: int = 400,
                 glyph: bool = False, specks: int = 0) -> Path:
    """A page-like picture: a light background, a coloured heading bar, lines of "text"."""
    img = Image.new("RGB", (300, height), "#f4f4f5")
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 280, 50), fill=heading)
    for y in range(70, height - 20, 16):
        draw.rectangle((20, y, 260, y + 6), fill="#18181b")
    if glyph:  # one character changed: a 7 x 11 px mark where the text had a gap
        draw.rectangle((262, 70, 268, 80), fill="#18181b")
    rng = random.Random(7)
    pixels = img.load()
    for _ in range(specks):  # single pixels far off, scattered: a hinting difference here and there
        pixels[rng.randrange(300), rng.randrange(height)] = (128, 0, 128)
    for _ in range(noise):  # anti-aliasing: edge pixels a little lighter or darker
        x, y = rng.randrange(300), rng.randrange(height)
        r, g, b = pixels[x, y]
        d = rng.randint(-30, 30)
        pixels[x, y] = (max(0, min(255, r + d)), max(0, min(255, g + d)), max(0, min(255, b + d)))
    img.save(path)
    return path


@pytest.fixture
def reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shots = tmp_path / "shots"
    shots.mkdir()
    monkeypatch.setattr(screenshots, "SHOTS", shots)
    monkeypatch.delenv("UPDATE_SCREENSHOTS", raising=False)
    return page_picture(shots / "page.png")


def test_anti_aliasing_noise_passes(reference: Path, tmp_path: Path) -> None:
    screenshots.check(page_picture(tmp_path / "page.png", noise=5000, specks=100), "page.png", tmp_path)


def test_one_changed_character_fails(reference: Path, tmp_path: Path) -> None:
    """77 pixels of 120,000 (0.06%): under the share for the whole picture, but they fill one square."""
    with pytest.raises(AssertionError, match=r"of one 16x16 square"):
        screenshots.check(page_picture(tmp_path / "page.png", glyph=True), "page.png", tmp_path)


def test_a_changed_colour_fails_naming_the_file_and_how_to_update(reference: Path, tmp_path: Path) -> None:
    taken = page_picture(tmp_path / "page.png", heading="#b91c1c")
    with pytest.raises(AssertionError) as failure:
        screenshots.check(taken, "page.png", tmp_path)
    message = str(failure.value)
    assert "screenshot page.png differs from tests/data/screenshots/page.png" in message
    assert "UPDATE_SCREENSHOTS=1 python -m pytest" in message
    assert (tmp_path / "new-page.png").is_file() and (tmp_path / "diff-page.png").is_file()


def test_a_changed_size_fails(reference: Path, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"its size is 300x420 px, the committed one's 300x400 px"):
        screenshots.check(page_picture(tmp_path / "page.png", height=420), "page.png", tmp_path)


def test_update_writes_the_new_reference(reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDATE_SCREENSHOTS", "1")
    taken = page_picture(tmp_path / "page.png", heading="#b91c1c")
    screenshots.check(taken, "page.png", tmp_path)
    assert reference.read_bytes() == taken.read_bytes()


def test_a_missing_reference_fails(reference: Path, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no committed screenshot"):
        screenshots.check(page_picture(tmp_path / "other.png"), "other.png", tmp_path)
