"""The worksheet's code-level differences: each kind, from the coder's codes and the reviewer's."""

from __future__ import annotations

from typing import Any

from server.coding.abstract import Abstract
from server.coding.schemas import Codes
from server.qa.diff import differences


def _dx(*codes: str, poa: str | None = None) -> Codes:
    return Codes.model_validate({"diagnoses": [{"code": c, "poa": poa} for c in codes]})


def _kinds(before: Codes, after: Codes, **kw: Any) -> list[tuple[str, int | None, bool]]:
    return [(d.kind, d.position, d.principal) for d in differences(before, after, **kw)]


def test_same_codes_make_no_difference():
    assert differences(_dx("E11.9", "I10"), _dx("E11.9", "I10")) == []


def test_added_deleted_and_revised_secondary_diagnoses():
    # J45.909 -> J45.41 (same category: revised), N18.3 gone, K21.9 new.
    diffs = differences(_dx("E11.9", "J45.909", "N18.30"), _dx("E11.9", "J45.41", "K21.9"))
    assert [(d.kind, d.position, d.before, d.after) for d in diffs] == [
        ("revised", 2, "J45.909", "J45.41"),
        ("deleted", 3, "N18.30", None),
        ("added", 3, None, "K21.9"),
    ]
    assert not any(d.principal for d in diffs)


def test_a_new_principal_diagnosis_is_a_principal_change():
    diffs = differences(_dx("E11.9", "I10"), _dx("E11.65", "I10"))
    assert [(d.kind, d.principal, d.before, d.after) for d in diffs] == [
        ("principal_changed", True, "E11.9", "E11.65")
    ]


def test_swapping_principal_and_secondary_is_one_resequencing_of_the_principal():
    assert _kinds(_dx("I10", "E11.9", "K21.9"), _dx("E11.9", "I10", "K21.9")) == [
        ("resequenced", 1, True)
    ]


def test_secondary_order_and_poa_changes():
    before = Codes.model_validate(
        {
            "diagnoses": [
                {"code": "I50.23", "poa": "Y"},
                {"code": "N17.9", "poa": "Y"},
                {"code": "J96.01", "poa": "Y"},
                {"code": "E11.9", "poa": "Y"},
            ]
        }
    )
    after = Codes.model_validate(
        {
            "diagnoses": [
                {"code": "I50.23", "poa": "Y"},
                {"code": "J96.01", "poa": "Y"},
                {"code": "N17.9", "poa": "N"},
                {"code": "E11.9", "poa": "Y"},
            ]
        }
    )
    diffs = differences(before, after)
    assert [(d.kind, d.position) for d in diffs] == [("poa_changed", 3), ("resequenced", 2)]
    assert (diffs[0].before, diffs[0].after) == ("N17.9 POA Y", "N17.9 POA N")


def test_procedure_modifier_units_and_revision():
    before = Codes.model_validate(
        {
            "diagnoses": [{"code": "E11.9"}],
            "procedures": [
                {"code": "99213", "modifiers": ["25"], "dx_pointers": [1]},
                {"code": "J1100", "system": "HCPCS", "units": 1, "dx_pointers": [1]},
            ],
        }
    )
    after = Codes.model_validate(
        {
            "diagnoses": [{"code": "E11.9"}],
            "procedures": [
                {"code": "99214", "modifiers": ["25"], "dx_pointers": [1]},
                {"code": "J1100", "system": "HCPCS", "units": 3, "dx_pointers": [1]},
            ],
        }
    )
    diffs = differences(before, after)
    assert [(d.kind, d.target, d.position) for d in diffs] == [
        ("modifier_units_changed", "px", 2),
        ("revised", "px", 1),
    ]
    assert (diffs[0].before, diffs[0].after) == ("HCPCS J1100 ×1", "HCPCS J1100 ×3")


def test_abstract_fields_changed():
    diffs = differences(
        _dx("I10"),
        _dx("I10"),
        abstract_before=Abstract(discharge_status="01", admission_type="1"),
        abstract_after=Abstract(discharge_status="06", admission_type="1"),
    )
    assert [(d.kind, d.target, d.field, d.before, d.after) for d in diffs] == [
        ("abstract_changed", "abstract", "discharge_status", "01", "06")
    ]
    # What is kept in clear (kind, line, field) never carries a code.
    assert diffs[0].key == "abstract_changed:abstract::discharge_status"
    assert "01" not in diffs[0].summary


def _px(*lines: tuple[str, list[str], int]) -> list[dict[str, Any]]:
    return [{"code": c, "system": "CPT", "modifiers": m, "units": u} for c, m, u in lines]


def test_undoing_each_difference_alone_gives_back_the_coders_line_in_its_place():
    from server.qa.diff import restore, restore_data

    coder = Codes.model_validate(
        {
            "diagnoses": [{"code": "E11.9", "poa": "Y"}, {"code": "I10"}, {"code": "J45.909"}],
            "procedures": _px(("99213", ["25"], 1), ("93000", [], 1), ("36415", [], 1)),
        }
    )
    reviewer = Codes.model_validate(
        {
            "diagnoses": [{"code": "E11.65", "poa": "Y"}, {"code": "J45.909"}, {"code": "K21.9"}],
            "procedures": _px(("99214", ["25"], 1), ("36415", [], 2), ("93000", [], 1)),
        }
    )
    abstract_c, abstract_r = Abstract(), Abstract(discharge_status="01")
    diffs = differences(coder, reviewer, abstract_before=abstract_c, abstract_after=abstract_r)
    undone = {}
    for d in diffs:
        codes, abstract = restore(
            kind=d.kind,
            target=d.target,
            field=d.field,
            data=restore_data(d, coder, abstract_c),
            codes=reviewer,
            abstract=abstract_r,
        )
        undone[(d.kind, d.target)] = (
            [(x.code, x.poa) for x in codes.diagnoses],
            [(p.code, p.units) for p in codes.procedures],
            abstract.discharge_status,
        )
    assert undone[("principal_changed", "dx")][0] == [
        ("E11.9", "Y"),
        ("J45.909", None),
        ("K21.9", None),
    ]
    assert undone[("deleted", "dx")][0] == [
        ("E11.65", "Y"),
        ("I10", None),
        ("J45.909", None),
        ("K21.9", None),
    ]
    assert undone[("added", "dx")][0] == [("E11.65", "Y"), ("J45.909", None)]
    assert undone[("revised", "px")][1] == [("99213", 1), ("36415", 2), ("93000", 1)]
    assert undone[("modifier_units_changed", "px")][1] == [
        ("99214", 1),
        ("36415", 1),
        ("93000", 1),
    ]
    assert undone[("resequenced", "px")][1] == [("99214", 1), ("93000", 1), ("36415", 2)]
    assert undone[("abstract_changed", "abstract")][2] is None


def test_undoing_a_diagnosis_difference_keeps_the_service_lines_pointing_at_their_codes():
    from server.qa.diff import restore, restore_data

    coder = Codes.model_validate(
        {
            "diagnoses": [{"code": "E11.9"}, {"code": "I10"}, {"code": "J45.909"}],
            "procedures": [{"code": "99213", "dx_pointers": [1, 3]}],
        }
    )
    reviewer = Codes.model_validate(
        {
            "diagnoses": [{"code": "E11.65"}, {"code": "J45.909"}],
            "procedures": [{"code": "99213", "dx_pointers": [1, 2]}],
        }
    )
    by_kind = {d.kind: d for d in differences(coder, reviewer)}
    undone = {}
    for kind in ("deleted", "principal_changed"):
        d = by_kind[kind]
        codes, _ = restore(
            kind=d.kind,
            target=d.target,
            field=d.field,
            data=restore_data(d, coder, None),
            codes=reviewer,
            abstract=Abstract(),
        )
        undone[kind] = ([x.code for x in codes.diagnoses], codes.procedures[0].dx_pointers)
    # I10 back on line 2: J45.909 moves to line 3 and the pointer follows it.
    assert undone["deleted"] == (["E11.65", "I10", "J45.909"], [1, 3])
    # E11.9 back as principal in E11.65's place: the pointer to line 1 stays on the principal.
    assert undone["principal_changed"] == (["E11.9", "J45.909"], [1, 2])
