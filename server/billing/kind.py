"""Which claim an encounter is billed on, from its class and its facility's setting.

A hospital bills its outpatient department's visits as the facility, on an institutional
claim (837I, type of bill 013x: revenue code, HCPCS, units and charge per line); an office
(or a professional encounter anywhere) bills on a professional claim (837P). Inpatient
stays are 837I (011x). Emergency visits keep their professional claim (place of service 23).

The claim type also chooses the NCCI PTP and MUE tables: practitioner for an 837P, hospital
outpatient for an outpatient 837I, none for an inpatient stay. This module reads settings
only, so billing and the claim edits share one answer.
"""

from __future__ import annotations

from typing import Literal

from server.config import Settings

ClaimType = Literal["837P", "837I"]


def facility_setting(settings: Settings, facility: str | None) -> str:
    """ "office" or "hospital": the facility's own (CHARTDESK_BILLING_FACILITY_SETTINGS, names
    compared case-insensitively), else CHARTDESK_BILLING_FACILITY_SETTING."""
    wanted = (facility or "").strip().casefold()
    return next(
        (
            v
            for k, v in settings.billing_facility_settings.items()
            if k.strip().casefold() == wanted
        ),
        settings.billing_facility_setting,
    )


def outpatient_institutional(
    settings: Settings, encounter_class: str, facility: str | None
) -> bool:
    """Whether the encounter is a hospital outpatient visit billed on an 837I (013x)."""
    return encounter_class.strip().lower() == "outpatient" and (
        facility_setting(settings, facility) == "hospital"
    )


def claim_type(settings: Settings, encounter_class: str, facility: str | None) -> ClaimType:
    """837I for an inpatient stay or a hospital outpatient visit, else 837P."""
    if encounter_class.strip().lower() == "inpatient":
        return "837I"
    return "837I" if outpatient_institutional(settings, encounter_class, facility) else "837P"


def edit_setting(settings: Settings, encounter_class: str, facility: str | None) -> str | None:
    """The NCCI PTP / MUE table of the claim: practitioner (837P), hospital (outpatient 837I),
    None (inpatient: PTP and MUE do not apply)."""
    if encounter_class.strip().lower() == "inpatient":
        return None
    if outpatient_institutional(settings, encounter_class, facility):
        return "hospital"
    return "practitioner"
