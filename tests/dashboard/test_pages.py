"""The dashboard's pages through Django's test client: who may see and change what, escaping,
CSRF, the forms (presets' targets), model actions and the server-side table."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from registry.models import AIModel, Provider

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/dashboard/models/", "/dashboard/free/", "/dashboard/providers/", "/dashboard/models/add/",
         "/dashboard/requests/", "/dashboard/agents/", "/dashboard/playground/"]


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_user("op", password="pw-op-123456", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def reader() -> Client:
    user = get_user_model().objects.create_user("reader", password="pw-reader-123456")
    client = Client()
    client.force_login(user)
    return client


def test_root_and_the_seeds_address_lead_to_the_dashboard(client):
    assert client.get("/").headers["location"] == "/dashboard/"
    assert client.get("/dashboard.html").headers["location"] == "/dashboard/"


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    for url in PAGES:
        reply = client.get(url)
        assert reply.status_code == 302 and reply.headers["location"].startswith("/dashboard/login/?next="), url


def test_every_page_renders_for_staff_and_readers(staff, reader, make_model):
    make_model("gpt-4o", provider="openai", input_price=5, output_price=15)
    model = make_model("llama3", provider="groq", is_free=True, free_rpm=30, free_rpd=1000)
    for client in (staff, reader):
        for url in [*PAGES, f"/dashboard/models/{model.pk}/"]:
            assert client.get(url).status_code == 200, url


def test_provider_text_is_escaped(staff, make_model):
    evil = '<script>alert("x")</script>'
    model = make_model("evil-model", provider="openai", name=evil, description=f"<img src=x onerror=alert(1)>{evil}")

    for url in ["/dashboard/models/", f"/dashboard/models/{model.pk}/"]:
        html = staff.get(url).content.decode()
        assert evil not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html


def test_a_reader_cannot_change_anything(reader, make_model, make_provider):
    model = make_model("gpt-4o", provider="openai")
    provider = Provider.objects.get(slug="openai")
    posts = [
        (f"/dashboard/models/{model.pk}/action", {"action": "disable"}),
        ("/dashboard/providers/add", {"kind": "ollama", "slug": "ollama"}),
        (f"/dashboard/providers/{provider.pk}/discover", {}),
        (f"/dashboard/providers/{provider.pk}/probe", {}),
        ("/dashboard/models/add/", {"name": "x", "provider": "openai"}),
        ("/dashboard/playground/run", {"prompt": "hi", "policy": "auto"}),
    ]
    for url, data in posts:
        assert reader.post(url, data).status_code == 403, url
    html = reader.get(f"/dashboard/models/{model.pk}/").content.decode()
    assert "Read-only" in html and 'value="disable"' not in html
    assert not AIModel.objects.get(pk=model.pk).disabled
    assert not Provider.objects.filter(slug="ollama").exists()


def test_forms_need_the_csrf_token(make_model):
    user = get_user_model().objects.create_user("op2", password="pw-op-123456", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    model = make_model("gpt-4o", provider="openai")

    assert client.post(f"/dashboard/models/{model.pk}/action", {"action": "disable"}).status_code == 403
    page = client.get(f"/dashboard/models/{model.pk}/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    token = client.cookies["csrftoken"].value
    ok = client.post(f"/dashboard/models/{model.pk}/action", {"action": "disable", "csrfmiddlewaretoken": token})
    assert ok.status_code == 302 and AIModel.objects.get(pk=model.pk).disabled


def test_model_actions_disable_enable_pin_and_set_priority(staff, make_model):
    model = make_model("gpt-4o", provider="openai")
    url = f"/dashboard/models/{model.pk}/action"

    staff.post(url, {"action": "disable"})
    assert AIModel.objects.get(pk=model.pk).disabled
    staff.post(url, {"action": "enable"})
    staff.post(url, {"action": "priority", "priority": "7"})
    staff.post(url, {"action": "pin", "pinned": ["name", "input_price", "not-a-field"]})
    model.refresh_from_db()
    assert (model.disabled, model.priority, model.pinned_fields) == (False, 7, ["input_price", "name"])
    assert staff.post(url, {"action": "priority", "priority": "1000"}).status_code == 400


def test_the_models_table_filters_sorts_and_pages_on_the_server(staff, make_model):
    for i in range(30):
        make_model(f"m-{i:02d}", provider="groq" if i % 2 else "openai", is_free=bool(i % 3 == 0))

    page = staff.get("/dashboard/models/?provider=groq&sort=model&dir=desc&size=25&part=table").content.decode()
    assert "groq/m-29" in page and "openai/m-" not in page and "data-total>15<" in page
    assert page.index("groq/m-29") < page.index("groq/m-27")
    second = staff.get("/dashboard/models/?size=25&page=2&part=table").content.decode()
    assert "data-total>30<" in second and "page 2 of 2" in second and "openai/m-00" not in second
    free = staff.get("/dashboard/models/?free=yes&q=m-0&part=table").content.decode()
    assert "openai/m-00" in free and "groq/m-03" in free and "m-01" not in free
    htmx = staff.get("/dashboard/models/?q=m-29", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in htmx and "groq/m-29" in htmx


def test_add_provider_form_creates_a_provider_and_shows_errors(staff):
    ok = staff.post("/dashboard/providers/add", {"kind": "ollama", "slug": "ollama", "baseUrl": "http://127.0.0.1:11434"})
    assert ok.status_code == 302 and Provider.objects.get(slug="ollama").kind == "ollama"

    again = staff.post("/dashboard/providers/add", {"kind": "ollama", "slug": "ollama", "apiKey": "sk-secret-never-echoed"})
    assert again.status_code == 400 and "exists" in again.content.decode()
    assert "sk-secret-never-echoed" not in again.content.decode()


def test_add_a_model_form_registers_it(staff):
    reply = staff.post("/dashboard/models/add/", {
        "name": "llama2", "provider": "ollama", "endpoint": "http://127.0.0.1:11434", "type": "llm",
        "capabilities": "text-generation, chat", "description": "Local Llama2 model via Ollama"})
    model = AIModel.objects.get(provider__slug="ollama", model_id="llama2")
    assert reply.status_code == 302 and reply.headers["location"] == f"/dashboard/models/{model.pk}/"
    assert model.is_free and model.capabilities == ["text-generation", "chat"]

    bad = staff.post("/dashboard/models/add/", {"name": "", "provider": "ollama"})
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.content.decode()


def test_pages_carry_no_inline_script(staff, make_model):
    make_model("gpt-4o", provider="openai")
    for url in PAGES:
        html = staff.get(url).content.decode()
        for chunk in html.split("<script")[1:]:
            head = chunk.split(">", 1)[0]
            assert "src=" in head or 'type="application/json"' in head, (url, head)


def test_ten_thousand_models_page_on_the_server_with_a_fixed_number_of_queries(staff, make_provider, django_assert_max_num_queries):
    from registry import version

    provider = make_provider("openrouter")
    AIModel.objects.bulk_create([AIModel(provider=provider, model_id=f"org/model-{i:05d}", name=f"model {i}",
                                         capabilities=["text-generation"], is_free=i % 7 == 0) for i in range(10_000)])
    version.bump_local()
    staff.get("/dashboard/models/?part=table")  # builds the snapshot once

    with django_assert_max_num_queries(3):  # session and user; the models come from memory
        page = staff.get("/dashboard/models/?part=table&free=yes&q=model-01&sort=model&dir=desc&page=3&size=25")

    html = page.content.decode()
    assert html.count("<tr data-model=") == 25 and "data-total>143<" in html and "page 3 of 6" in html


def test_a_discovery_cycle_keeps_each_providers_last_result_for_the_providers_page(db):
    from registry.discovery import ProviderResult, keep_results, last_result

    keep_results([ProviderResult(provider="groq", seen=12, new=2, changed=1, retired=0, seconds=0.42)])

    kept = last_result("groq")
    assert (kept["seen"], kept["new"], kept["changed"], kept["retired"], kept["seconds"]) == (12, 2, 1, 0, 0.42)
