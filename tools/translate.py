"""Fill msgstr entries of a catalog from a JSON file of {msgid: translation}: ``python tools/translate.py zh_CN FILE``.

Translations that lose or add a ``{placeholder}`` are refused, so a catalog never breaks formatting.
"""

from __future__ import annotations

import json
import string
import sys

from babel.messages.pofile import read_po, write_po

from i18n import CATALOG_DIR


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def main(language: str, source: str) -> int:
    path = CATALOG_DIR / f"{language}.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    with open(source, encoding="utf-8") as fh:
        translations: dict[str, str] = json.load(fh)
    for msgid, text in translations.items():
        message = catalog.get(msgid)
        if message is None:
            print(f"not in the catalog: {msgid!r}", file=sys.stderr)
        elif fields(msgid) != fields(text):
            print(f"placeholders differ, refused: {msgid!r}", file=sys.stderr)
        else:
            message.string = text
    with path.open("wb") as fh:
        write_po(fh, catalog, width=100, sort_output=True, ignore_obsolete=True)
    missing = sum(1 for m in catalog if m.id and not m.string)
    print(f"{missing} messages without a {language} translation")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
