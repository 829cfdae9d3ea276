"""The main navigation reaches every part of the platform, and every link in it answers."""
import re

import pytest

pytestmark = pytest.mark.django_db


def test_main_navigation_links_every_area_and_each_page_answers(client, django_user_model):
    user = django_user_model.objects.create_user("researcher", password="pw")
    client.force_login(user)
    page = client.get("/", follow=True)
    assert page.status_code == 200
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page.content.decode(), re.S).group(1)
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav)
    assert [label for _, label in links] == [
        "Datasets", "Import claims", "Studies", "Personas", "Simulations", "Method", "API"]
    for href, label in links:
        assert client.get(href).status_code == 200, (label, href)
