"""Forms that fail come back with the message at the field and the input kept: never a
dead-end "Request refused" page that throws away what the person typed."""

from __future__ import annotations

import re

from tests.support.coding import GOOD_CODES, coder_with_item, signed_in
from tests.support.factories import make_encounter


def _form(client, **fields):
    return {"csrf_token": client.headers["X-CSRF-Token"], **fields}


def test_a_qa_finding_without_a_category_keeps_the_reviewers_edits(make_client):
    held = coder_with_item(make_client, "trainee", in_training=True)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    sup = signed_in(make_client, "sup1", "supervisor")
    # E11.9 -> E11.65 (principal changed) and J45.909 dropped (deleted): the first difference
    # gets a category and a comment, the second none.
    r = sup.post(
        f"/qa/{held.item_id}",
        data=_form(
            sup,
            decision="correct",
            dx_code=["E11.65", "I10"],
            finding_key=["principal_changed:dx:1:", "deleted:dx:3:"],
            finding_category=["specificity", ""],
            finding_comment=["hyperglycemia in the H&P", ""],
            reason="",
        ),
    )
    assert r.status_code == 422
    assert "Give each difference an error category" in r.text
    assert "Difference 2, code deleted (diagnosis 3): choose an error category." in r.text
    assert 'value="E11.65"' in r.text  # the correction typed, not the coder's E11.9
    assert 'aria-describedby="err-finding-2"' in r.text  # the message at its row
    assert '<option value="specificity" selected>' in r.text  # the first row's pick kept
    assert 'value="hyperglycemia in the H&amp;P"' in r.text
    assert 'class="document"' in r.text  # still beside the chart
    # Nothing changed: the item still waits for review.
    assert sup.get(f"/qa/{held.item_id}").status_code == 200


def test_adding_a_user_without_a_role_keeps_the_name(make_client):
    admin = signed_in(make_client, "root", "admin")
    r = admin.post("/admin/users", data=_form(admin, username="newcoder"))
    assert r.status_code == 422
    assert "Request refused" not in r.text
    assert 'id="form-error"' in r.text
    assert re.search(r'id="new-username"[^>]*value="newcoder"', r.text)
    assert "err-roles" in r.text


def test_emergency_access_with_an_unlisted_reason_keeps_the_item(make_client):
    item_id = make_encounter()
    coder = signed_in(make_client, "ana", "coder")
    r = coder.post("/emergency-access", data=_form(coder, work_item_id=str(item_id), reason="x"))
    assert r.status_code == 422
    assert "Choose one of the listed reasons" in r.text
    assert re.search(rf'id="work_item_id"[^>]*value="{item_id}"', r.text)
    assert 'id="emergency-banner"' not in r.text  # nothing opened


def test_a_priority_out_of_range_shows_the_dashboard_with_the_reason(make_client):
    item_id = make_encounter()
    sup = signed_in(make_client, "sup1", "supervisor")
    r = sup.post(f"/supervise/items/{item_id}/priority", data=_form(sup, priority="5000"))
    assert r.status_code == 422
    assert "Request refused" not in r.text
    assert 'id="queue-stats"' in r.text
    assert "Priority is above the highest allowed value." in r.text
    assert "Field required" not in r.text


def test_a_missing_field_is_named_in_a_plain_sentence(make_client):
    item_id = make_encounter()
    sup = signed_in(make_client, "sup1", "supervisor")
    r = sup.post(f"/supervise/items/{item_id}/move", data=_form(sup))
    assert r.status_code == 422
    error = re.search(r'id="supervise-error">([^<]*)<', r.text)
    assert error is not None
    assert error.group(1) == "Queue is required."
    r = sup.post(f"/supervise/items/{item_id}/priority", data=_form(sup, priority="high"))
    assert "Priority must be a whole number." in r.text


def test_a_forbidden_form_post_is_never_shown_its_page(make_client):
    coder = signed_in(make_client, "ana", "coder")
    r = coder.post("/admin/users", data=_form(coder, username="x"))
    assert r.status_code == 403
    assert 'id="add-user"' not in r.text
