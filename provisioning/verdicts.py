"""The diagnosis's verdict, drawn by rules kept as data (``provisioning/verdicts.toml``, docs/diagnose.md).

A rule names a verdict, an action and conditions on the outcomes of the recipe's earlier steps, each
``STEP.FIELD OP VALUE`` (OP one of ``== != < <= > >= in``; VALUE a TOML value; ``ok`` is every step's field:
whether it ran to the end).  ``all`` must all hold, ``any`` at least one; a rule with neither always matches.
The first rule that matches wins.  A rule naming an unknown step, field, verdict or action, or a condition that
does not parse, is refused with its line when the rules are loaded, before any unit is touched.
"""

from __future__ import annotations

import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i18n import N_, _
from terminal.errors import NaiadError

from .steps import StepOutcome

RULES_PATH = Path(__file__).with_name("verdicts.toml")

ACTIONS: dict[str, str] = {
    "none": N_("Nothing to do"),
    "re-flash": N_("Re-flash the firmware"),
    "re-calibrate": N_("Re-calibrate the camera"),
    "re-inject": N_("Re-inject the payment keys"),
    "replace-cable": N_("Replace the USB cable (or try another hub port)"),
    "rma": N_("Return the unit to the manufacturer (RMA)"),
}
"""The actions a verdict may suggest, and how people read them."""

VERDICTS: dict[str, str] = {
    "healthy": N_("The unit is healthy"),
    "inconclusive": N_("Some checks could not run; those that did found no fault"),
    "noisy-link": N_("The link to the unit is noisy"),
    "dead-projector": N_("The IR projector is dead"),
    "camera-module": N_("The camera module is faulty"),
    "firmware": N_("The firmware is damaged or did not boot"),
    "keys-missing": N_("The payment keys are missing or not the ones injected"),
    "calibration-drift": N_("The camera calibration has drifted"),
}
"""The verdicts rules may draw, and how people read them."""

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "in": lambda found, wanted: found in wanted,
}
_CONDITION = re.compile(r"\s*([a-z][a-z0-9-]*)\.([a-z_][a-z0-9_]*)\s*(==|!=|<=|>=|<|>|\bin\b)\s*(.+?)\s*\Z")
_KEYS = {"name", "verdict", "action", "all", "any"}


class VerdictRulesError(NaiadError):
    message = N_("The verdict rules {source} are invalid at line {line}: {reason}")
    remedy = N_("Correct the rule (docs/diagnose.md describes the format).")


@dataclass(frozen=True)
class Condition:
    step: str
    field: str
    op: str
    value: Any
    text: str

    def holds(self, earlier: Mapping[str, StepOutcome]) -> bool:
        outcome = earlier.get(self.step)
        if outcome is None:
            return False  # a step the recipe did not run proves nothing
        found = outcome.ok if self.field == "ok" else outcome.data.get(self.field)
        if found is None:
            return False
        try:
            return bool(OPERATORS[self.op](found, self.value))
        except TypeError:  # a figure compared with a value of another kind: the rule does not apply
            return False


@dataclass(frozen=True)
class Rule:
    name: str
    verdict: str
    action: str
    all: tuple[Condition, ...]
    any: tuple[Condition, ...]
    line: int

    def matches(self, earlier: Mapping[str, StepOutcome]) -> list[Condition]:
        """The conditions that made it match (empty list and None apart: None when it does not match)."""
        if not all(c.holds(earlier) for c in self.all):
            return []
        held = [c for c in self.any if c.holds(earlier)]
        if self.any and not held:
            return []
        return [*self.all, *held] or [Condition("", "", "", None, "")]


@dataclass(frozen=True)
class Verdict:
    verdict: str
    action: str
    reasons: list[str]
    rule: str

    @property
    def text(self) -> str:
        return _(VERDICTS[self.verdict])

    @property
    def action_text(self) -> str:
        return _(ACTIONS[self.action])

    def as_data(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "verdict_text": self.text,
            "action": self.action,
            "action_text": self.action_text,
            "reasons": self.reasons,
            "rule": self.rule,
        }


def _rule_lines(text: str) -> list[int]:
    return [number for number, line in enumerate(text.splitlines(), 1) if line.strip().startswith("[[rule]]")]


def _condition(text: Any, known: Mapping[str, frozenset[str]], error: Callable[[str], VerdictRulesError]) -> Condition:
    if not isinstance(text, str) or not (found := _CONDITION.match(text)):
        raise error(_("the condition {text} is not STEP.FIELD OP VALUE", text=repr(text)))
    step, field, op, raw = found.groups()
    if step not in known:
        raise error(_("there is no step {step} to judge; known: {known}", step=step, known=", ".join(sorted(known))))
    if field != "ok" and field not in known[step]:
        fields = ", ".join(sorted({"ok", *known[step]}))
        raise error(_("step {step} has no field {field}; it has {fields}", step=step, field=field, fields=fields))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        raise error(_("the value {value} is not a TOML value", value=raw)) from None
    if op == "in" and not isinstance(value, list):
        raise error(_("'in' needs a list of values, not {value}", value=raw))
    return Condition(step, field, op, value, text.strip())


def parse_rules(text: str, source: str, known: Mapping[str, frozenset[str]]) -> tuple[Rule, ...]:
    """The rules of ``text``; ``known`` maps each step a rule may name to its data fields."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VerdictRulesError(source=source, line=getattr(exc, "lineno", "?"), reason=str(exc)) from None
    unknown_top = set(document) - {"rule"}
    if unknown_top:
        raise VerdictRulesError(source=source, line=1, reason=_("unknown key {key}", key=sorted(unknown_top)[0]))
    tables = document.get("rule", [])
    lines = _rule_lines(text)
    if not isinstance(tables, list) or not tables:
        raise VerdictRulesError(source=source, line=1, reason=_("there is no [[rule]]"))
    rules = []
    for index, table in enumerate(tables):
        line = lines[index] if index < len(lines) else "?"

        def error(reason: str, line: object = line) -> VerdictRulesError:
            return VerdictRulesError(source=source, line=line, reason=reason)

        extra = set(table) - _KEYS
        if extra:
            raise error(_("unknown key {key}", key=sorted(extra)[0]))
        name, verdict, action = table.get("name"), table.get("verdict"), table.get("action")
        if not isinstance(name, str) or not name:
            raise error(_("a rule needs a name"))
        if verdict not in VERDICTS:
            raise error(
                _("unknown verdict {verdict}; known: {known}", verdict=repr(verdict), known=", ".join(VERDICTS))
            )
        if action not in ACTIONS:
            raise error(_("unknown action {action}; known: {known}", action=repr(action), known=", ".join(ACTIONS)))
        groups = []
        for key in ("all", "any"):
            conditions = table.get(key, [])
            if not isinstance(conditions, list):
                raise error(_("{key} must be a list of conditions", key=key))
            groups.append(tuple(_condition(c, known, error) for c in conditions))
        rules.append(Rule(name, verdict, action, groups[0], groups[1], line if isinstance(line, int) else 0))
    return tuple(rules)


def load_rules(known: Mapping[str, frozenset[str]], path: Path = RULES_PATH) -> tuple[Rule, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VerdictRulesError(source=str(path), line=0, reason=str(exc)) from None
    return parse_rules(text, str(path), known)


def judge(rules: tuple[Rule, ...], earlier: Mapping[str, StepOutcome]) -> Verdict:
    """The first rule that matches ``earlier``; its reasons are the findings of the steps its conditions name
    (else the conditions themselves).  No rule matching is inconclusive."""
    for rule in rules:
        held = rule.matches(earlier)
        if not held:
            continue
        reasons: list[str] = []
        for condition in held:
            outcome = earlier.get(condition.step)
            if outcome is None:
                continue
            findings = outcome.data.get("findings") or ([outcome.detail] if not outcome.ok and outcome.detail else [])
            found = [str(f) for f in findings if str(f) not in reasons] or [
                _("{step}: {condition}", step=condition.step, condition=condition.text)
            ]
            reasons.extend(r for r in found if r not in reasons)
        return Verdict(rule.verdict, rule.action, reasons, rule.name)
    return Verdict("inconclusive", "none", [_("No verdict rule matched")], "")
