"""The NUBC UB-04 value sets of the inpatient abstract (FL14, FL15, FL17), with their
descriptions: the official lists, short enough to ship as data (not a code set to load)."""

from __future__ import annotations

# FL14 Priority (type) of admission or visit.
ADMISSION_TYPE: dict[str, str] = {
    "1": "Emergency",
    "2": "Urgent",
    "3": "Elective",
    "4": "Newborn",
    "5": "Trauma",
    "9": "Information not available",
}

# FL15 Point of origin for admission or visit (adult codes; 5 and 6 as NUBC now lists them).
ADMISSION_SOURCE: dict[str, str] = {
    "1": "Non-health care facility point of origin",
    "2": "Clinic or physician's office",
    "4": "Transfer from a hospital (different facility)",
    "5": "Transfer from a skilled nursing facility, intermediate care or assisted living",
    "6": "Transfer from another health care facility",
    "7": "Emergency room",
    "8": "Court/law enforcement",
    "9": "Information not available",
    "B": "Transfer from another home health agency",
    "C": "Readmission to same home health agency",
    "D": "Transfer from one distinct unit of the hospital to another, separate claim",
    "E": "Transfer from ambulatory surgery center",
    "F": "Transfer from a hospice facility",
    "G": "Transfer from a designated disaster alternate care site",
}

# FL17 Patient discharge status.
DISCHARGE_STATUS: dict[str, str] = {
    "01": "Discharged to home or self care (routine discharge)",
    "02": "Discharged/transferred to a short-term general hospital for inpatient care",
    "03": "Discharged/transferred to a skilled nursing facility (SNF)",
    "04": "Discharged/transferred to a facility that provides custodial or supportive care",
    "05": "Discharged/transferred to a designated cancer center or children's hospital",
    "06": "Discharged/transferred to home under care of an organized home health service",
    "07": "Left against medical advice or discontinued care",
    "09": "Admitted as an inpatient to this hospital",
    "20": "Expired",
    "21": "Discharged/transferred to court/law enforcement",
    "30": "Still patient",
    "40": "Expired at home (hospice claims only)",
    "41": "Expired in a medical facility (hospice claims only)",
    "42": "Expired, place unknown (hospice claims only)",
    "43": "Discharged/transferred to a federal health care facility",
    "50": "Hospice - home",
    "51": "Hospice - medical facility (certified) providing hospice level of care",
    "61": "Discharged/transferred to a hospital-based Medicare approved swing bed",
    "62": "Discharged/transferred to an inpatient rehabilitation facility (IRF)",
    "63": "Discharged/transferred to a Medicare certified long term care hospital (LTCH)",
    "64": "Discharged/transferred to a nursing facility certified under Medicaid only",
    "65": "Discharged/transferred to a psychiatric hospital or psychiatric distinct part unit",
    "66": "Discharged/transferred to a critical access hospital (CAH)",
    "69": "Discharged/transferred to a designated disaster alternative care site",
    "70": "Discharged/transferred to another type of health care institution not defined",
    "81": "Home or self care with a planned acute care hospital inpatient readmission",
    "82": "Short term general hospital, with a planned acute care inpatient readmission",
    "83": "SNF with Medicare certification, with a planned acute care inpatient readmission",
    "84": "Custodial/supportive care facility, with a planned acute care inpatient readmission",
    "85": "Cancer center or children's hospital, with a planned acute care inpatient readmission",
    "86": "Home health service, with a planned acute care inpatient readmission",
    "87": "Court/law enforcement, with a planned acute care inpatient readmission",
    "88": "Federal health care facility, with a planned acute care inpatient readmission",
    "89": "Swing bed, with a planned acute care inpatient readmission",
    "90": "Inpatient rehabilitation facility, with a planned acute care inpatient readmission",
    "91": "Long term care hospital, with a planned acute care inpatient readmission",
    "92": "Medicaid-only nursing facility, with a planned acute care inpatient readmission",
    "93": "Psychiatric hospital or unit, with a planned acute care inpatient readmission",
    "94": "Critical access hospital, with a planned acute care inpatient readmission",
    "95": "Another type of institution, with a planned acute care inpatient readmission",
}
