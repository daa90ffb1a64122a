"""A tenant's answer policy, chosen on its settings page; answers then follow it."""

from __future__ import annotations

from django.urls import reverse


def test_the_answer_policy_is_set_on_the_settings_page(staff_client, make_tenant):
    tenant = make_tenant("pool")
    assert tenant.answer_policy == "strict"  # a new tenant's: sentences must be supported
    page = staff_client.get(reverse("console:tenant", args=[tenant.slug])).content.decode()
    assert '<label for="id_answer_policy">' in page
    assert '<option value="strict" selected>' in page

    url = reverse("console:tenant-answer-policy", args=[tenant.slug])
    response = staff_client.post(url, {"answer_policy": "extractive"})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.answer_policy == "extractive"
    page = staff_client.get(response["Location"]).content.decode()
    assert "Answer policy saved." in page and '<option value="extractive" selected>' in page

    refused = staff_client.post(url, {"answer_policy": "lenient"})
    assert refused.status_code == 200
    assert 'id="id_answer_policy_error"' in refused.content.decode()
    tenant.refresh_from_db()
    assert tenant.answer_policy == "extractive"
