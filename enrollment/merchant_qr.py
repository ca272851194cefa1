"""The text of a store's binding QR code: which merchant and store a unit is to be bound to.

Two forms are read, both strictly (the text comes from a camera or a paste, so from anywhere):

- ``https://<host>/bind?merchant_id=M&store_id=S`` (any host, as printed by the platform), and
- the JSON object ``{"merchant_id": "M", "store_id": "S"}``.

Exactly those two fields, each once, with ids of :data:`enrollment.config.ID`; nothing else (no user info,
fragment, other path, extra or repeated field, percent-escape) and at most :data:`MAX_TEXT` characters.
This is plain format code: the sandbox may import it to print the same text for its stores.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from i18n import N_

from .config import ID, Merchant
from .errors import EnrollmentError

MAX_TEXT = 512
"""The longest QR text read: a binding code is well under 200 characters."""
FIELDS = ("merchant_id", "store_id")
PATH = "/bind"


class MerchantQrInvalid(EnrollmentError):
    message = N_("The scanned text is not a store's binding code: {reason}")
    remedy = N_("Scan the store's binding QR code again, or type the merchant id and the store id.")
    msgid_params = ("reason",)


def merchant_qr_text(merchant: Merchant, host: str = "platform.example") -> str:
    """The binding QR text of ``merchant``'s store, as the platform prints it."""
    return f"https://{host}{PATH}?merchant_id={merchant.merchant_id}&store_id={merchant.store_id}"


def parse_merchant_qr(text: str) -> Merchant:
    """The merchant and store that ``text`` names; :class:`MerchantQrInvalid` for anything else."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise MerchantQrInvalid(reason=N_("too long"))
    text = text.strip(" \t\r\n")  # scanners end a code with a newline
    if not text.isprintable():  # also every white space but the plain space
        raise MerchantQrInvalid(reason=N_("it holds control characters"))
    fields = _json_fields(text) if text.startswith("{") else _url_fields(text)
    if sorted(fields) != sorted(FIELDS):
        raise MerchantQrInvalid(reason=N_("it must name exactly a merchant_id and a store_id"))
    for name in FIELDS:
        value = fields[name]
        if not isinstance(value, str) or not ID.fullmatch(value):
            raise MerchantQrInvalid(reason=N_("a merchant or store id is not valid"))
    return Merchant(fields["merchant_id"], fields["store_id"])


def _url_fields(text: str) -> dict[str, Any]:
    try:  # urlsplit raises on a broken IPv6 host or a host NFKC changes; .port on a port out of range
        parts = urlsplit(text)
        parts.port  # noqa: B018
    except ValueError:
        raise MerchantQrInvalid(reason=N_("not an https://…/bind address")) from None
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path != PATH
        or parts.fragment
        or "#" in text
        or " " in text
    ):
        raise MerchantQrInvalid(reason=N_("not an https://…/bind address"))
    fields: dict[str, Any] = {}
    for pair in parts.query.split("&"):
        name, equals, value = pair.partition("=")
        if not equals or name in fields:
            raise MerchantQrInvalid(reason=N_("it must name exactly a merchant_id and a store_id"))
        fields[name] = value
    return fields


def _json_fields(text: str) -> dict[str, Any]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        fields = dict(pairs)
        if len(fields) != len(pairs):
            raise MerchantQrInvalid(reason=N_("it must name exactly a merchant_id and a store_id"))
        return fields

    try:
        fields = json.loads(text, object_pairs_hook=unique)
    except (ValueError, RecursionError):
        raise MerchantQrInvalid(reason=N_("not a JSON object")) from None
    if not isinstance(fields, dict):
        raise MerchantQrInvalid(reason=N_("not a JSON object"))
    return fields
