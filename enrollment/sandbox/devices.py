"""Handlers of a unit's life on the platform: inventory registration (a batch), binding to a store, activation.

A unit enters its supplier's inventory, is bound to one merchant's store, then activated; each step repeated
with the same content answers as the first time did (the same ``bound`` and ``activated`` times).
"""

from __future__ import annotations

from typing import Any

from ..gateway import Code, Method
from .models import Device, Merchant, Store
from .registry import Call, Refused, handles, time_text

MAX_BATCH = 100


def _supplier(call: Call) -> str:
    """The request's ``supplier_id``, which must be the app's own: an app acts for its supplier only."""
    supplier_id = call.text("supplier_id")
    if supplier_id != call.supplier_id:
        raise Refused("SUPPLIER_NOT_PERMITTED", "supplier_id is not this app's supplier", Code.FORBIDDEN)
    return supplier_id


def _device(call: Call, serial: str) -> Device:
    """The unit ``serial`` in the app's supplier's inventory."""
    device = call.session.get(Device, serial)
    if device is None or device.supplier_id != call.supplier_id:
        raise Refused("DEVICE_NOT_IN_INVENTORY", "the unit is not in this supplier's inventory")
    return device


@handles(Method.INVENTORY_REGISTER)
def register_inventory(call: Call) -> dict[str, Any]:
    """Each unit of the batch into the supplier's inventory, with its own status; the batch itself succeeds."""
    call.only("out_request_no", "supplier_id", "devices")
    out_request_no = call.text("out_request_no")
    supplier_id = _supplier(call)
    units = []
    for item in call.items("devices", MAX_BATCH):
        unit = call.item_call(item)
        unit.only("serial", "model")
        units.append((unit.text("serial"), unit.text("model")))
    results: list[dict[str, Any]] = []
    for serial, model in units:
        device = call.session.get(Device, serial)
        if device is None:
            call.session.add(Device(serial=serial, model=model, supplier_id=supplier_id, registered=call.now))
            call.session.flush()
            results.append({"serial": serial, "status": "registered"})
        elif device.supplier_id == supplier_id:
            results.append({"serial": serial, "status": "already-registered"})
        else:
            results.append(
                {
                    "serial": serial,
                    "status": "refused",
                    "sub_code": "DEVICE_OWNED_ELSEWHERE",
                    "sub_msg": "the unit is in another supplier's inventory",
                }
            )
    return {"out_request_no": out_request_no, "results": results}


@handles(Method.DEVICE_BIND)
def bind_device(call: Call) -> dict[str, Any]:
    """Bind a unit of the supplier's inventory to a merchant's store (again to the same store: the same answer)."""
    call.only("out_request_no", "serial", "supplier_id", "merchant_id", "store_id")
    out_request_no, serial = call.text("out_request_no"), call.text("serial")
    _supplier(call)
    merchant_id, store_id = call.text("merchant_id"), call.text("store_id")
    device = _device(call, serial)
    if call.session.get(Merchant, merchant_id) is None:
        raise Refused("MERCHANT_NOT_FOUND", "no such merchant")
    if call.session.get(Store, (merchant_id, store_id)) is None:
        raise Refused("STORE_NOT_FOUND", "the merchant has no such store")
    if device.bound is None:
        device.merchant_id, device.store_id, device.bound = merchant_id, store_id, call.now
    elif (device.merchant_id, device.store_id) != (merchant_id, store_id):
        raise Refused("DEVICE_BOUND_ELSEWHERE", "the unit is bound to another merchant or store")
    assert device.bound is not None
    return {
        "out_request_no": out_request_no,
        "serial": serial,
        "merchant_id": merchant_id,
        "store_id": store_id,
        "bound": time_text(device.bound),
    }


@handles(Method.DEVICE_ACTIVATE)
def activate_device(call: Call) -> dict[str, Any]:
    """Activate a bound unit (again: the first activation's time)."""
    call.only("out_request_no", "serial")
    out_request_no, serial = call.text("out_request_no"), call.text("serial")
    device = _device(call, serial)
    if device.bound is None:
        raise Refused("DEVICE_NOT_BOUND", "the unit is not bound to a store")
    if device.activated is None:
        device.activated = call.now
    return {"out_request_no": out_request_no, "serial": serial, "activated": time_text(device.activated)}
