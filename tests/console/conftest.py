"""Console test fixtures: clients logged in as a staff user, a non-staff user, or nobody."""

from __future__ import annotations

import itertools
import re

import pytest
from django.test import Client

_users = itertools.count(1)


def _user(*, is_staff: bool):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        f"console-user-{next(_users)}", password="pw-for-tests", is_staff=is_staff
    )


@pytest.fixture
def staff_client(pg):
    """A test Client logged in as a new staff user (removed by `pg` after the test)."""
    client = Client()
    client.force_login(_user(is_staff=True))
    return client


@pytest.fixture
def user_client(pg):
    """A test Client logged in as a new user who is not staff."""
    client = Client()
    client.force_login(_user(is_staff=False))
    return client


@pytest.fixture
def csrf_staff_client(pg):
    """A staff Client that, like a browser, must send the CSRF token with every POST."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(_user(is_staff=True))
    return client


def form_token(html: str) -> str:
    """The csrfmiddlewaretoken of the first form in a page."""
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def shown_key(html: str) -> str | None:
    """The plaintext API key a page shows, if any."""
    found = re.search(r'id="new-key">(tnt_[^<]+)<', html)
    return found.group(1) if found else None
