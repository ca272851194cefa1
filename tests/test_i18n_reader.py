"""The catalog reader the commands use at run time agrees with Babel's, which writes the catalogs."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po, write_po
from hypothesis import given, settings
from hypothesis import strategies as st

import i18n


def babel_entries(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        po = read_po(fh)
    return {str(m.id): str(m.string) for m in po if m.id and m.string and not m.fuzzy}


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_the_shipped_catalogs_read_as_babel_reads_them(language: str) -> None:
    path = i18n.CATALOG_DIR / f"{language}.po"
    assert i18n._read_catalog(path) == babel_entries(path)


def write(tmp_path: Path, catalog: Catalog) -> Path:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=40)  # narrow: long strings become continuation lines
    path = tmp_path / "x.po"
    path.write_bytes(buffer.getvalue())
    return path


def test_fuzzy_untranslated_obsolete_and_escaped_entries(tmp_path: Path) -> None:
    catalog = Catalog(locale="zh_CN")
    catalog.add("Plain {serial}", "普通 {serial}", locations=[("a.py", 1)])
    catalog.add("Guessed", "猜的", flags=["fuzzy", "python-brace-format"])
    catalog.add("Untranslated", "")
    catalog.add('Say "hi"\\now\n\ttabbed', '说 "嗨"\\现在\n\t缩进')
    catalog.add("A long sentence that Babel wraps over several lines of the file " * 3, "长句 " * 30)
    catalog.obsolete["Gone"] = Message("Gone", "走了")
    path = write(tmp_path, catalog)
    entries = i18n._read_catalog(path)
    assert entries == babel_entries(path)
    assert set(entries) == {
        "Plain {serial}",
        'Say "hi"\\now\n\ttabbed',
        "A long sentence that Babel wraps over several lines of the file " * 3,
    }


text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters='\n\t"\\'), min_size=1, max_size=80
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(text, text, min_size=1, max_size=8))
def test_any_catalog_babel_writes_reads_back_the_same(
    tmp_path_factory: pytest.TempPathFactory, pairs: dict[str, str]
) -> None:
    catalog = Catalog(locale="zh_CN")
    for msgid, msgstr in pairs.items():
        catalog.add(msgid, msgstr)
    path = write(tmp_path_factory.mktemp("po"), catalog)
    assert i18n._read_catalog(path) == babel_entries(path)


def test_translating_loads_no_babel() -> None:
    code = "import sys, i18n; i18n.set_language('zh_CN'); i18n._('Wrote {partition}', partition='boot')\n"
    code += "print('babel' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
