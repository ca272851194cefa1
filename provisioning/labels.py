"""A unit's label: a 50 x 30 mm sticker with a QR code of its serial, model and payment key IDs (never a key).

The QR code holds :func:`label_text`, a compact text a scanner or a script splits without guessing::

    NAIAD1;S=<serial>;M=<model>;K=<key id>[,<key id>...]

``NAIAD1`` names the format (version 1); fields are ``;``-separated ``NAME=value`` pairs in this order; ``K`` is
empty when the unit holds no key yet.  Serials are the ledger's (letters, digits, ``.``, ``_``, ``:``, ``-``),
models letters, digits, ``.``, ``_``, ``-``; key IDs upper-case hex (Initial Key IDs).  Anything else (a
separator, a space, too much text for a QR code readable on the label) is refused, not escaped.

:func:`write_label` writes the label as a PNG (300 dpi) and a PDF of the label's size, both with the QR code and
the same fields in text.  The fields' captions are in the user's language; captions beyond Latin-1 (Chinese) are
set in a CJK TrueType font (WenQuanYi, ``fonts-wqy-microhei``) embedded in both files, or left in English, with a
logged note, when no such font is installed.  The values (serial, model, key IDs) are ASCII.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import reportlab
import segno
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from i18n import N_, _

from .report_data import ReportError, file_stem, write_shared

LOG = logging.getLogger(__name__)
FORMAT = "NAIAD1"
CAPTIONS = {"serial": N_("S/N"), "model": N_("Model"), "key_id": N_("Key ID"), "key_ids": N_("Key IDs")}
CJK_FONT = "NaiadLabelCJK"
CJK_FONT_FILES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
"""TrueType CJK fonts a label's captions may use (reportlab embeds TrueType, not the CFF of Noto CJK)."""
LABEL_MM = (50.0, 30.0)
DPI = 300
MAX_KEY_IDS = 4
MAX_TEXT = 120
MAX_QR_VERSION = 7
"""45 modules (+ the quiet zone) on the label's 26 mm: 0.5 mm a module, read by phone cameras and scanners."""
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_KEY_ID = re.compile(r"[0-9A-F]{16}|[0-9A-F]{20}")
"""An AES DUKPT Initial Key ID (8 bytes) or a TDES initial KSN (10): never the length of a key."""


class LabelInputInvalid(ReportError):
    message = N_("The label cannot hold {field} '{value}': {reason}")
    remedy = N_("Use the unit's serial, model and Initial Key IDs as the ledger records them.")
    msgid_params = ("field", "reason")


class LabelTooLong(ReportError):
    message = N_("The label's text is {length} characters, more than a readable QR code on it can hold ({limit})")
    remedy = N_("A label holds at most {keys} key IDs; leave the others to the unit's report.")


class LabelNotWritten(ReportError):
    message = N_("The label could not be written to {path}: {reason}")
    remedy = N_("Choose a folder the station may write to, with free space.")


def label_text(serial: str, model: str, key_ids: Sequence[str]) -> str:
    """The QR code's text for the unit (format above); :class:`LabelInputInvalid` or :class:`LabelTooLong`
    for input it cannot hold as it is."""
    _check(N_("serial"), serial, _SERIAL, N_("only letters, digits, '.', '_', ':' and '-', at most 64"))
    _check(N_("model"), model, _MODEL, N_("only letters, digits, '.', '_' and '-', at most 32"))
    if isinstance(key_ids, str):
        raise LabelInputInvalid(field=N_("key IDs"), value="", reason=N_("a list of key IDs is expected"))
    for key_id in key_ids:
        _check(N_("key ID"), key_id, _KEY_ID, N_("16 or 20 upper-case hex digits"), echo=False)
    text = f"{FORMAT};S={serial};M={model};K={','.join(key_ids)}"
    if len(key_ids) > MAX_KEY_IDS or len(text) > MAX_TEXT:
        raise LabelTooLong(length=len(text), limit=MAX_TEXT, keys=MAX_KEY_IDS)
    return text


def parse_label_text(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``(serial, model, key_ids)`` from a label's QR text; :class:`LabelInputInvalid` when it is not one."""
    parts = text.split(";")
    if len(parts) != 4 or parts[0] != FORMAT or [p[:2] for p in parts[1:]] != ["S=", "M=", "K="]:
        raise LabelInputInvalid(field=N_("label text"), value=text[:24], reason=N_("not a Naiad label"))
    keys = tuple(k for k in parts[3][2:].split(",") if k)
    serial, model = parts[1][2:], parts[2][2:]
    label_text(serial, model, keys)  # the same checks as when it was made
    return serial, model, keys


def _check(field: str, value: object, pattern: re.Pattern[str], reason: str, *, echo: bool = True) -> None:
    """Refuse ``value`` unless it matches; a refused key ID is not echoed (it might be a key given by mistake)."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = str(value)[:40] if echo else f"<{len(str(value))} characters>"
        raise LabelInputInvalid(field=field, value=shown, reason=reason)


def _qr(text: str) -> segno.QRCode:
    code = segno.make_qr(text, error="m", boost_error=True)
    if code.version is None or int(code.version) > MAX_QR_VERSION:  # MAX_TEXT keeps it far below
        raise LabelTooLong(length=len(text), limit=MAX_TEXT, keys=MAX_KEY_IDS)
    return code


def write_label(serial: str, model: str, key_ids: Sequence[str], out_dir: Path) -> tuple[Path, Path]:
    """Write ``<serial>-label.png`` (300 dpi) and ``<serial>-label.pdf`` (50 x 30 mm) into ``out_dir``."""
    png, pdf = write_label_files(serial, model, key_ids, out_dir, LABEL_FORMATS)
    return png, pdf


LABEL_FORMATS = ("png", "pdf")


def write_label_files(
    serial: str, model: str, key_ids: Sequence[str], out_dir: Path, formats: Sequence[str] = LABEL_FORMATS
) -> list[Path]:
    """Write the label in each of ``formats`` (``png``, ``pdf``) into ``out_dir``, in that order.

    Each is written to a temporary file then renamed: a failure leaves no label of this call behind."""
    text = label_text(serial, model, key_ids)
    unknown = [f for f in formats if f not in LABEL_FORMATS]
    if unknown or not formats:
        raise LabelInputInvalid(field=N_("format"), value=",".join(unknown), reason=N_("use png, pdf or both"))
    code = _qr(text)
    layout = _layout(serial, model, key_ids)
    stem = file_stem(serial)
    drawers: dict[str, Callable[[Path], None]] = {
        "png": lambda path: _draw_png(code, layout, path),
        "pdf": lambda path: _draw_pdf(code, layout, path, serial),
    }
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabelNotWritten(path=str(out_dir), reason=exc.strerror or str(exc)) from exc
    written: list[Path] = []
    try:
        for fmt in dict.fromkeys(formats):
            path = Path(out_dir) / f"{stem}-label.{fmt}"
            _atomic(path, drawers[fmt])
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise LabelNotWritten(path=str(path), reason=exc.strerror or str(exc)) from exc
    os.close(handle)
    try:
        write(Path(temp))
        write_shared(Path(temp), path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise LabelNotWritten(path=str(path), reason=exc.strerror or str(exc)) from exc
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- drawing: the QR code on the left, the fields on the right; one layout (in points) drawn twice ---------------

_MARGIN_MM = 1.0
"""Beside the QR code: its own 4-module quiet zone (2.5 mm) keeps its dark modules 3.5 mm from the edge."""
_QR_MM = LABEL_MM[1] - 4.0
"""26 mm square, its 4-module quiet zone included, centred on the label's height."""
_TEXT_X_MM = _MARGIN_MM + _QR_MM + 0.2
_TEXT_W_MM = LABEL_MM[0] - _TEXT_X_MM - 1.0
_PT_MM = 25.4 / 72
_CAPTION_PT = 4.2
_VALUE_PT = (4.5, 7.0)
_REGULAR, _BOLD = "Vera", "VeraBd"
"""Bitstream Vera, shipped inside reportlab: the same glyphs in the PNG and the PDF, and no font file of ours."""


@dataclass(frozen=True)
class _Text:
    text: str
    font: str
    size: float  # points
    gray: int  # 0 black .. 255 white
    x_mm: float
    baseline_mm: float  # from the label's top edge


def _font_file(font: str) -> str:
    if font == CJK_FONT:
        found = _cjk_font_file()
        if found is None:
            raise LabelNotWritten(path="-", reason=N_("no CJK font is installed"))
        return found
    return str(Path(reportlab.__file__).resolve().parent / "fonts" / f"{font}.ttf")


def _cjk_font_file() -> str | None:
    return next((path for path in CJK_FONT_FILES if Path(path).is_file()), None)


def captions() -> dict[str, tuple[str, str]]:
    """The fields' captions in the user's language with the font each is set in; English ones when a caption
    needs a CJK font and none is installed (said in the log)."""
    translated = {key: _(msgid) for key, msgid in CAPTIONS.items()}
    if all(_latin1(text) for text in translated.values()):
        return {key: (text, _REGULAR) for key, text in translated.items()}
    if _cjk_font_file() is None:
        LOG.warning("no CJK font (%s): the label's captions are in English", ", ".join(CJK_FONT_FILES))
        return {key: (msgid, _REGULAR) for key, msgid in CAPTIONS.items()}
    return {key: (text, _REGULAR if _latin1(text) else CJK_FONT) for key, text in translated.items()}


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _width(text: str, font: str, size: float) -> float:
    """``text``'s width in mm at ``size`` points."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(font, _font_file(font), subfontIndex=0))
    return float(pdfmetrics.stringWidth(text, font, size)) * _PT_MM


def _wrapped(value: str, font: str, size: float) -> list[str]:
    """``value`` cut into lines that fit beside the QR code (serials have no spaces to break at)."""
    lines = [""]
    for char in value:
        if lines[-1] and _width(lines[-1] + char, font, size) > _TEXT_W_MM:
            lines.append("")
        lines[-1] += char
    return lines


def _layout(serial: str, model: str, key_ids: Sequence[str]) -> list[_Text]:
    """The fields as captioned lines, as large as fits beside the QR code (long values wrap); the serial bold."""
    shown = captions()
    fields = [
        (shown["serial"], _BOLD, [serial]),
        (shown["model"], _REGULAR, [model]),
        (shown["key_id" if len(key_ids) < 2 else "key_ids"], _REGULAR, list(key_ids)),
    ]
    fields = [(caption, font, values) for caption, font, values in fields if values]
    widest = max(_width(v, font, 1.0) for _c, font, values in fields for v in values)
    size = max(_VALUE_PT[0], min(_VALUE_PT[1], 0.98 * _TEXT_W_MM / widest))  # 2 %: rounding in both renderers
    while True:
        texts: list[_Text] = []
        y = 0.0
        for (caption, caption_font), font, values in fields:
            y += _CAPTION_PT * _PT_MM
            texts.append(_Text(caption, caption_font, _CAPTION_PT, 96, _TEXT_X_MM, y))
            y += 0.35
            for line in (part for value in values for part in _wrapped(value, font, size)):
                y += size * _PT_MM * 1.02
                texts.append(_Text(line, font, size, 0, _TEXT_X_MM, y))
            y += 1.2
        height = y - 1.2
        if height <= _QR_MM - 2 or size <= 3.5:
            break
        size -= 0.25
    top = (LABEL_MM[1] - height) / 2
    return [_Text(t.text, t.font, t.size, t.gray, t.x_mm, t.baseline_mm + top) for t in texts]


def _px(value_mm: float) -> int:
    return round(value_mm / 25.4 * DPI)


def _draw_png(code: segno.QRCode, layout: Sequence[_Text], path: Path) -> None:
    width, height = _px(LABEL_MM[0]), _px(LABEL_MM[1])
    image = Image.new("L", (width, height), 255)
    modules = code.symbol_size(scale=1, border=4)[0]
    module = _QR_MM / modules  # mm; each module's edges rounded to whole pixels, so modules stay sharp
    top = (LABEL_MM[1] - _QR_MM) / 2
    draw = ImageDraw.Draw(image)
    for row, bits in enumerate(code.matrix):
        for column, bit in enumerate(bits):
            if bit:
                x0, x1 = _px(_MARGIN_MM + (column + 4) * module), _px(_MARGIN_MM + (column + 5) * module)
                y0, y1 = _px(top + (row + 4) * module), _px(top + (row + 5) * module)
                draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=0)
    fonts: dict[tuple[str, float], ImageFont.FreeTypeFont] = {}
    for item in layout:
        key = (item.font, item.size)
        if key not in fonts:
            fonts[key] = ImageFont.truetype(_font_file(item.font), round(item.size / 72 * DPI))
        draw.text((_px(item.x_mm), _px(item.baseline_mm)), item.text, font=fonts[key], fill=item.gray, anchor="ls")
    image.save(path, format="PNG", dpi=(DPI, DPI), optimize=True)


def _draw_pdf(code: segno.QRCode, layout: Sequence[_Text], path: Path, title: str) -> None:
    canvas = Canvas(str(path), pagesize=(LABEL_MM[0] * mm, LABEL_MM[1] * mm), invariant=True)
    canvas.setTitle(title)
    modules = code.symbol_size(scale=1, border=4)[0]
    module = _QR_MM * mm / modules
    top = (LABEL_MM[1] * mm + module * modules) / 2
    path_ = canvas.beginPath()
    for row, bits in enumerate(code.matrix):
        for column, bit in enumerate(bits):
            if bit:
                path_.rect(_MARGIN_MM * mm + (column + 4) * module, top - (row + 5) * module, module, module)
    canvas.drawPath(path_, stroke=0, fill=1)
    for item in layout:
        _width(item.text, item.font, item.size)  # registers the font
        canvas.setFillGray(item.gray / 255)
        canvas.setFont(item.font, item.size)
        canvas.drawString(item.x_mm * mm, (LABEL_MM[1] - item.baseline_mm) * mm, item.text)
    canvas.showPage()
    canvas.save()
