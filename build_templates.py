"""Setuptools hook: the email templates live in ``templates/`` at the top of the source tree (where an operator
finds them); a wheel carries them inside the package as ``newsletter/templates/``.

``newsletter.render.shipped_templates_dir`` looks there first, then in the source checkout, so both an
installed package and ``pip install -e .`` find them. Named in pyproject.toml under ``[tool.setuptools.cmdclass]``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools.command.build_py import build_py as _build_py

TEMPLATES = Path(__file__).resolve().parent / "templates"


class build_py(_build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads templates/ from the checkout
        for source in sorted(TEMPLATES.rglob("*")):
            if source.is_file() and not source.name.startswith("."):
                target = Path(self.build_lib) / "newsletter" / "templates" / source.relative_to(TEMPLATES)
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))
