"""Who may see what in the console: each view and each recipe is shown only to the roles allowed it.

The roles are the ledger's (:data:`provisioning.ledger.models.ROLES`); they do not nest, so an admin is not an
operator.  A view's roles are this module's table; a recipe's are its steps' own (:attr:`provisioning.steps.Step.
roles`, empty meaning any logged-in operator), so the console offers a recipe exactly when the pipeline would run
it for this operator.  The engines check again when they run: hiding is for people, the checks are for safety.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from i18n import N_

if TYPE_CHECKING:
    from provisioning.operators import OperatorSession
    from provisioning.recipes import Recipe

BENCH, WIZARD, SUPPORT, SETTINGS = "bench", "wizard", "support", "settings"
VIEWS: tuple[str, ...] = (BENCH, WIZARD, SUPPORT, SETTINGS)
ALL_ROLES = ("installer", "operator", "custodian", "support", "admin")

VIEW_ROLES: dict[str, tuple[str, ...]] = {
    BENCH: ("operator",),
    WIZARD: ("installer", "operator"),
    SUPPORT: ("support", "operator"),
    SETTINGS: ALL_ROLES,
}
"""Who sees each view: the bench is the distributor's operator's; installers bring units live in the wizard (an
operator may too, to try a unit); support engineers (and operators) diagnose at the support desk; everyone has
Settings, whose station-wide parts only an admin may change (:data:`STATION_SETTINGS_ROLES`)."""

STATION_SETTINGS_ROLES: tuple[str, ...] = ("admin",)
"""Who may change the ledger URL, the key store, the platform configuration and the trusted release keys.  The
language and the idle lock are each console's own and anyone logged in may change them."""

VIEW_TITLES: dict[str, str] = {
    BENCH: N_("Bench"),
    WIZARD: N_("Installer"),
    SUPPORT: N_("Support desk"),
    SETTINGS: N_("Settings"),
}


def may_see(session: OperatorSession | None, view: str) -> bool:
    """Whether the operator logged in (None: nobody) may see ``view``."""
    return session is not None and session.role in VIEW_ROLES[view]


def may_change_station_settings(session: OperatorSession | None) -> bool:
    return session is not None and session.role in STATION_SETTINGS_ROLES


def may_run(session: OperatorSession | None, recipe: Recipe) -> bool:
    """Whether ``recipe``'s every step allows the operator's role (a step with no roles: any logged-in operator)."""
    if session is None:
        return False
    from provisioning.steps import step_class

    return all(not cls.roles or session.role in cls.roles for cls in (step_class(s.name) for s in recipe.steps))
