"""Read-only views for trainers and tests: ``GET /sandbox/merchants`` and ``GET /sandbox/devices``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Device, Merchant, Store, SubsidyEnrollment
from .registry import inspects, time_text

QR_HOST = "platform.example"


def merchant_qr_text(merchant_id: str, store_id: str, host: str = QR_HOST) -> str:
    """The text of a store's QR code, in enrollment.merchant_qr's format (the sandbox does not import the client)."""
    return f"https://{host}/bind?merchant_id={merchant_id}&store_id={store_id}"


@inspects("merchants")
def merchants(session: Session) -> list[dict[str, Any]]:
    stores: dict[str, list[dict[str, Any]]] = {}
    for store in session.scalars(select(Store).order_by(Store.merchant_id, Store.store_id)):
        stores.setdefault(store.merchant_id, []).append(
            {
                "store_id": store.store_id,
                "name": store.name,
                "qr_text": merchant_qr_text(store.merchant_id, store.store_id),
            }
        )
    return [
        {"merchant_id": m.merchant_id, "name": m.name, "stores": stores.get(m.merchant_id, [])}
        for m in session.scalars(select(Merchant).order_by(Merchant.merchant_id))
    ]


@inspects("devices")
def devices(session: Session) -> list[dict[str, Any]]:
    programs = {
        serial: program
        for serial, program in session.execute(select(SubsidyEnrollment.serial, SubsidyEnrollment.program))
    }
    return [
        {
            "serial": d.serial,
            "model": d.model,
            "inventory_owner": d.supplier_id,
            "merchant_id": d.merchant_id,
            "store_id": d.store_id,
            "activated": d.activated is not None,
            "activated_at": None if d.activated is None else time_text(d.activated),
            "subsidy_program": programs.get(d.serial),
        }
        for d in session.scalars(select(Device).order_by(Device.serial))
    ]
