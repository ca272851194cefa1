"""A unit's label: its QR code decodes back (OpenCV) to exactly the label's text, from the PNG and from the PDF
rendered as a page; input a QR code on the label cannot hold, or that would break the text's format, is refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from provisioning.labels import (
    DPI,
    LABEL_MM,
    LabelInputInvalid,
    LabelNotWritten,
    LabelTooLong,
    label_text,
    parse_label_text,
    write_label,
    write_label_files,
)

SERIAL = "DF2-2026-000123"
KEY_ID = "0123ABCD00000001"


def decoded(image: np.ndarray) -> str:
    text, points, _code = cv2.QRCodeDetector().detectAndDecode(image)
    assert points is not None, "no QR code found"
    return str(text)


def test_the_label_text_is_compact_and_parses_back() -> None:
    text = label_text(SERIAL, "df2", [KEY_ID])
    assert text == f"NAIAD1;S={SERIAL};M=df2;K={KEY_ID}"
    assert parse_label_text(text) == (SERIAL, "df2", (KEY_ID,))
    two = label_text("A:1", "df2", [KEY_ID, "0123ABCD0000000200AA"])
    assert parse_label_text(two) == ("A:1", "df2", (KEY_ID, "0123ABCD0000000200AA"))
    assert label_text(SERIAL, "df2", []) == f"NAIAD1;S={SERIAL};M=df2;K="
    with pytest.raises(LabelInputInvalid):
        parse_label_text("WIFI:S=home;T=WPA;P=x;;")


@pytest.mark.parametrize(
    ("serial", "model", "keys"),
    [
        ("A;K=FFFF", "df2", [KEY_ID]),  # a separator would forge a field
        ("A=B", "df2", [KEY_ID]),
        ("A B", "df2", [KEY_ID]),
        ("", "df2", [KEY_ID]),
        (SERIAL, "df2;X", [KEY_ID]),
        (SERIAL, "型号", [KEY_ID]),
        (SERIAL, "df2", ["0123abcd00000001"]),  # lower case: not the ledger's form
        (SERIAL, "df2", [KEY_ID + ",0123ABCD00000002"]),
        (SERIAL, "df2", ["00112233445566778899AABBCCDDEEFF"]),  # 16 bytes: the length of a key, not a key ID
        (SERIAL, "df2", KEY_ID),  # a string, not a list
    ],
)
def test_input_that_would_break_the_format_is_refused(serial: str, model: str, keys: list[str]) -> None:
    with pytest.raises(LabelInputInvalid) as caught:
        label_text(serial, model, keys)
    assert "00112233445566778899AABBCCDDEEFF" not in str(caught.value)  # a refused key ID is never echoed


def test_too_much_text_for_a_readable_qr_code_is_refused(tmp_path: Path) -> None:
    five = [f"0123ABCD{i:08X}" for i in range(1, 6)]
    with pytest.raises(LabelTooLong):
        label_text(SERIAL, "df2", five)
    with pytest.raises(LabelTooLong):
        write_label("S" * 64, "M" * 32, five[:3], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_png_label_is_50_by_30_mm_at_300_dpi_and_its_qr_code_decodes(tmp_path: Path) -> None:
    png, pdf = write_label(SERIAL, "df2", [KEY_ID], tmp_path / "labels")
    assert (png.name, pdf.name) == (f"{SERIAL}-label.png", f"{SERIAL}-label.pdf")
    with Image.open(png) as image:
        assert image.size == (round(LABEL_MM[0] / 25.4 * DPI), round(LABEL_MM[1] / 25.4 * DPI))
        assert tuple(round(d) for d in image.info["dpi"]) == (DPI, DPI)
        pixels = np.array(image.convert("L"))
    assert decoded(pixels) == label_text(SERIAL, "df2", [KEY_ID])
    right = pixels[:, pixels.shape[1] * 58 // 100 :]  # the text beside the QR code is drawn
    assert (right < 128).sum() > 500


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_the_pdf_label_rendered_at_300_dpi_decodes_to_the_same_text(tmp_path: Path) -> None:
    keys = [KEY_ID, "0123ABCD0000000200AA"]
    _png, pdf = write_label("SN:42-x.y_z", "df2", keys, tmp_path)
    subprocess.run(["pdftoppm", "-r", "300", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=60)
    (page,) = sorted(tmp_path.glob("page*.png"))
    with Image.open(page) as image:
        assert abs(image.size[0] - 591) <= 2 and abs(image.size[1] - 354) <= 2  # 50 x 30 mm
        pixels = np.array(image.convert("L"))
    assert decoded(pixels) == label_text("SN:42-x.y_z", "df2", keys)
    assert (pixels[:, pixels.shape[1] * 58 // 100 :] < 128).sum() > 500


def test_only_the_formats_asked_for_are_written(tmp_path: Path) -> None:
    (only,) = write_label_files(SERIAL, "df2", [KEY_ID], tmp_path, ["pdf"])
    assert only.suffix == ".pdf" and [p.name for p in tmp_path.iterdir()] == [only.name]
    with pytest.raises(LabelInputInvalid):
        write_label_files(SERIAL, "df2", [KEY_ID], tmp_path, ["gif"])


def test_an_unwritable_folder_is_a_typed_error_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(LabelNotWritten):
        write_label(SERIAL, "df2", [KEY_ID], blocker / "labels")
    (tmp_path / f"{SERIAL}-label.pdf").mkdir()  # the PDF cannot take its place: the PNG is taken back too
    with pytest.raises(LabelNotWritten):
        write_label(SERIAL, "df2", [KEY_ID], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{SERIAL}-label.pdf", "file"]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
@pytest.mark.parametrize(("serial", "key_id"), [("DF2E25BE623", "DE11000100000002"), (SERIAL, KEY_ID)])
def test_a_key_id_that_fits_is_printed_on_one_line(tmp_path: Path, serial: str, key_id: str) -> None:
    _png, pdf = write_label(serial, "df2", [key_id], tmp_path)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, timeout=60).stdout.decode()
    assert key_id in text.split() and serial in text.split()


ZH = {"S/N": "序列号", "Model": "型号", "Key ID": "密钥标识", "Key IDs": "密钥标识"}


def test_captions_are_translated_and_set_in_a_cjk_font(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Chinese captions are drawn with an embedded CJK font in the PDF and the PNG (the QR code still reads); with
    no CJK font installed the captions stay English and the log says why."""
    import provisioning.labels as labels

    monkeypatch.setattr(labels, "_", lambda msgid: ZH.get(msgid, msgid))
    if labels._cjk_font_file() is None:
        pytest.skip("no CJK TrueType font (fonts-wqy-microhei) on this machine")
    layout = labels._layout("DF2035031D9", "df2", ["DE11000100000001"])
    assert [(t.text, t.font) for t in layout if t.text in ZH.values()] == [
        ("序列号", labels.CJK_FONT),
        ("型号", labels.CJK_FONT),
        ("密钥标识", labels.CJK_FONT),
    ]
    png, pdf = write_label_files("DF2035031D9", "df2", ["DE11000100000001"], tmp_path)
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True, timeout=60).stdout
        assert "序列号" in text.decode("utf-8") and "DE11000100000001" in text.decode("utf-8")
    with Image.open(png) as image:
        assert decoded(np.array(image.convert("L"))).startswith("NAIAD1;S=DF2035031D9")

    monkeypatch.setattr(labels, "CJK_FONT_FILES", (str(tmp_path / "no-such-font.ttc"),))
    with caplog.at_level("WARNING", logger="provisioning.labels"):
        texts = [t.text for t in labels._layout("DF2035031D9", "df2", ["DE11000100000001"])]
    assert "S/N" in texts and "序列号" not in texts
    assert "CJK" in caplog.text
