"""A tenant's default generation model, chosen on its settings page."""

from __future__ import annotations

from django.urls import reverse

GEMMA = "gemma-3-270m-q4_k_m"


def test_the_default_model_is_chosen_among_the_registered_ones(staff_client, make_tenant):
    tenant = make_tenant("pool")
    page = staff_client.get(reverse("console:tenant", args=[tenant.slug])).content.decode()
    assert '<label for="id_default_model">' in page
    assert "Platform default (SmolLM2-135M-Instruct.Q8_0)" in page
    assert f'<option value="{GEMMA}">' in page

    url = reverse("console:tenant-model", args=[tenant.slug])
    response = staff_client.post(url, {"default_model": GEMMA})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.default_model == GEMMA
    page = staff_client.get(response["Location"]).content.decode()
    assert "Default model saved." in page and f'<option value="{GEMMA}" selected>' in page

    refused = staff_client.post(url, {"default_model": "no-such-model"})
    assert refused.status_code == 200
    assert 'id="id_default_model_error"' in refused.content.decode()
    tenant.refresh_from_db()
    assert tenant.default_model == GEMMA

    assert staff_client.post(url, {"default_model": ""}).status_code == 302
    tenant.refresh_from_db()
    assert tenant.default_model == ""
