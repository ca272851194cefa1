"""The console's look: unit-state colours and the one style sheet the window applies.

Colours are chosen to read at a glance across a bench of many cards and to survive greyscale
printing of a screenshot (each state also differs in its label text and border weight).
"""

from __future__ import annotations

from enum import StrEnum

from i18n import N_


class UnitState(StrEnum):
    """What a card shows about its unit; the value is the card's ``state`` style property."""

    RUN = "run"
    BOOTLOADER = "bootloader"
    DISCONNECTED = "disconnected"
    BUSY = "busy"
    ERROR = "error"


# msgids of the state badges; translated when the card (re)draws.
STATE_LABELS: dict[UnitState, str] = {
    UnitState.RUN: N_("Connected"),
    UnitState.BOOTLOADER: N_("Bootloader"),
    UnitState.DISCONNECTED: N_("Disconnected"),
    UnitState.BUSY: N_("Busy"),
    UnitState.ERROR: N_("Error"),
}

# (accent, badge text colour, card background)
STATE_COLOURS: dict[UnitState, tuple[str, str, str]] = {
    UnitState.RUN: ("#2e7d32", "#ffffff", "#f4faf4"),
    UnitState.BOOTLOADER: ("#1565c0", "#ffffff", "#f3f7fc"),
    UnitState.DISCONNECTED: ("#c62828", "#ffffff", "#eeeeee"),
    UnitState.BUSY: ("#ef6c00", "#ffffff", "#fff8f0"),
    UnitState.ERROR: ("#b71c1c", "#ffffff", "#fdecea"),
}

LEVEL_COLOURS: dict[int, str] = {10: "#757575", 20: "#212121", 30: "#e65100", 40: "#c62828", 50: "#b71c1c"}


def level_colour(levelno: int) -> str:
    """The log pane's text colour for a logging level (the nearest level at or below it)."""
    known = [level for level in sorted(LEVEL_COLOURS) if level <= levelno]
    return LEVEL_COLOURS[known[-1]] if known else LEVEL_COLOURS[10]


def stylesheet() -> str:
    """The application style sheet: one rule set per unit state, keyed by the card's ``state`` property."""
    rules = [
        "QFrame#unitCard { border: 1px solid #c8c8c8; border-radius: 6px; }",
        "QLabel#cardTitle { font-weight: bold; font-size: 14px; }",
        "QLabel#cardModelId { color: #616161; }",
        "QLabel#stateBadge { border-radius: 8px; padding: 2px 8px; font-weight: bold; }",
        "QLabel#benchPlaceholder { color: #757575; font-size: 14px; }",
        'QLabel#cardStep[failed="true"] { color: #b71c1c; }',
    ]
    for state, (accent, badge_text, background) in STATE_COLOURS.items():
        rules.append(
            f'QFrame#unitCard[state="{state.value}"] {{ border-left: 6px solid {accent}; background: {background}; }}'
        )
        rules.append(
            f'QFrame#unitCard[state="{state.value}"] QLabel#stateBadge {{ background: {accent}; color: {badge_text}; }}'
        )
    rules.append('QFrame#unitCard[state="disconnected"] QLabel { color: #757575; }')
    rules.append('QFrame#unitCard[state="disconnected"] QLabel#stateBadge { color: #ffffff; }')
    return "\n".join(rules)
