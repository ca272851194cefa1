"""Find every user-facing string in the source (``_()`` and ``N_()`` calls) and keep the catalogs in step.

``python -m i18n.extract`` rewrites ``messages.pot`` and merges it into ``zh_CN.po`` and ``en.po``:
new msgids are added untranslated (English gets the msgid itself), translations of vanished ones are
marked obsolete.  A test fails while any msgid lacks its Chinese translation.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from . import CATALOG_DIR

ROOT = CATALOG_DIR.parent
PACKAGES = ("console", "provisioning", "firmware", "keys", "camera", "enrollment", "terminal", "simulator")
KEYWORDS = {"_": None, "N_": None}


def extract_messages(root: Path = ROOT) -> Catalog:
    """A template catalog of every msgid in the product packages."""
    template = Catalog(project="naiad", charset="utf-8")
    for package in PACKAGES:
        directory = root / package
        if not directory.is_dir():
            continue
        found = extract_from_dir(
            str(directory), method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
        )
        for filename, lineno, message, comments, context in found:
            if isinstance(message, str) and message:
                template.add(
                    message, locations=[(f"{package}/{filename}", lineno)], auto_comments=comments, context=context
                )
    return template


def merge(template: Catalog, language: str) -> Catalog:
    path = CATALOG_DIR / f"{language}.po"
    if path.exists():
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=language)
    else:
        catalog = Catalog(locale=language, project="naiad", charset="utf-8")
    catalog.update(template, no_fuzzy_matching=True)
    if language == "en":
        for message in catalog:
            if message.id and not message.string:
                message.string = message.id
    return catalog


def write(catalog: Catalog, path: Path) -> None:
    with path.open("wb") as fh:
        write_po(fh, catalog, width=100, sort_output=True, omit_header=False, ignore_obsolete=True)


def main() -> int:
    template = extract_messages()
    write(template, CATALOG_DIR / "messages.pot")
    for language in ("zh_CN", "en"):
        write(merge(template, language), CATALOG_DIR / f"{language}.po")
    missing = [m.id for m in merge(template, "zh_CN") if m.id and not m.string]
    print(f"{len(template)} messages; {len(missing)} without a zh_CN translation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
