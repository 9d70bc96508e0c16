"""The outbound URL policy at registration (afmts/urlpolicy.py): a URL AFMTS would call is refused
with a 400 naming the field and the rule, wherever it is written — REST, admin, manage.py."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from afmts import urlpolicy
from registry.admin import AgentForm, ProviderForm
from registry.models import Agent, Provider
from registry.providers import ADAPTERS

# The security trial's URLs, and every other notation of the metadata and link-local addresses.
ALWAYS_REFUSED = {
    "http://169.254.169.254/latest/meta-data": "link_local",
    "http://[::ffff:169.254.169.254]/": "link_local",
    "http://[::169.254.169.254]/": "link_local",
    "http://[64:ff9b::a9fe:a9fe]/": "link_local",
    "http://[2002:a9fe:a9fe::1]/": "link_local",
    "http://[fe80::1]:8080/": "link_local",
    "http://[fd00:ec2::254]/latest/meta-data": "metadata",
    "http://100.100.100.200/latest/meta-data": "metadata",
    "http://metadata.google.internal/computeMetadata/v1/": "metadata",
    "http://METADATA.google.internal./": "metadata",
    "http://2852039166/": "ipv4_notation",
    "http://0251.0376.0251.0376/": "ipv4_notation",
    "http://0xa9fea9fe/": "ipv4_notation",
    "http://0xA9.0xFE.0xA9.0xFE/": "ipv4_notation",
    "http://127.1:6379/": "ipv4_notation",
    "http://0.0.0.0:22/": "unspecified",
    "http://[::]:22/": "unspecified",
    "http://224.0.0.251/": "multicast",
    "http://255.255.255.255/": "broadcast",
    "ftp://files.example.com/models": "scheme",
    "file:///etc/passwd": "scheme",
    "gopher://127.0.0.1:6379/_INFO": "scheme",
}
PRIVATE = ["http://127.0.0.1:6379", "http://localhost:8000", "http://[::1]:8000", "http://10.1.2.3:8000",
           "http://172.16.0.9:8000", "http://192.168.1.10:11434", "http://100.64.0.1:8000", "http://[fd12::1]:8000"]


@pytest.fixture(autouse=True)
def strict(settings):
    """The operator's default: no private upstreams for hosted kinds (the suite allows them)."""
    settings.AFMTS_ALLOW_PRIVATE_UPSTREAMS = False
    settings.AFMTS_ALLOWED_UPSTREAM_HOSTS = []
    settings.AFMTS_DEMO = False


def refusal(response, field: str) -> str:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["fields"]) == [field], error
    return " ".join(error["fields"][field])


@pytest.mark.parametrize("url,rule", ALWAYS_REFUSED.items())
def test_every_notation_of_a_forbidden_address_is_refused_for_every_kind(url, rule):
    for kind in ("groq", "ollama", "openai_compatible", urlpolicy.AGENT):
        with pytest.raises(urlpolicy.Refused) as caught:
            urlpolicy.check_url(url, kind=kind)
        assert caught.value.rule == rule


@pytest.mark.parametrize("url", PRIVATE)
def test_loopback_and_private_addresses_are_for_local_server_kinds_only(url):
    for kind in urlpolicy.LOCAL_KINDS:
        urlpolicy.check_url_resolved(url, kind=kind)
    for kind in ("openai", "groq", "anthropic", urlpolicy.AGENT):
        with pytest.raises(urlpolicy.Refused) as caught:
            urlpolicy.check_url_resolved(url, kind=kind)
        assert caught.value.rule == "private"


def test_the_operator_may_allow_private_upstreams_all_or_by_host(settings):
    with pytest.raises(urlpolicy.Refused):
        urlpolicy.check_url("http://10.0.0.7:4000", kind="openai")
    settings.AFMTS_ALLOWED_UPSTREAM_HOSTS = ["10.0.0.7:4000", "proxy.lan"]
    urlpolicy.check_url("http://10.0.0.7:4000/v1", kind="openai")
    with pytest.raises(urlpolicy.Refused):
        urlpolicy.check_url("http://10.0.0.7:4001", kind="openai")  # another port is another service
    settings.AFMTS_ALLOWED_UPSTREAM_HOSTS = []
    settings.AFMTS_ALLOW_PRIVATE_UPSTREAMS = True
    urlpolicy.check_url("http://10.0.0.7:4001", kind="openai")
    with pytest.raises(urlpolicy.Refused):  # never the metadata server, whatever the settings
        urlpolicy.check_url("http://169.254.169.254/", kind="openai")


def test_the_demo_providers_fake_server_is_allowed_in_demo_mode_only(settings):
    settings.AFMTS_DEMO_PORT = 8900
    with pytest.raises(urlpolicy.Refused):
        urlpolicy.check_url("http://127.0.0.1:8900/groq", kind="groq")
    settings.AFMTS_DEMO = True
    urlpolicy.check_url("http://127.0.0.1:8900/groq", kind="groq")
    with pytest.raises(urlpolicy.Refused):
        urlpolicy.check_url("http://127.0.0.1:6379/", kind="groq")


def test_public_urls_pass():
    for url in ("https://api.openai.com/v1", "https://api.groq.com/openai", "http://8.8.8.8:80/",
                "https://[2606:4700::1111]/"):
        urlpolicy.check_url(url, kind="openai")


def test_the_local_kinds_are_the_adapters_that_are_local_servers():
    local = {kind for kind, cls in ADAPTERS.items() if cls.always_local or cls.loopback_is_local}
    assert urlpolicy.LOCAL_KINDS == local


def test_a_refusal_names_the_host_and_never_the_rest_of_the_url():
    with pytest.raises(urlpolicy.Refused) as caught:
        urlpolicy.check_url("http://user:hunter2-secret@169.254.169.254/latest?token=abc", kind="groq")
    assert "169.254.169.254" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "token" not in str(caught.value)


# ------------------------------------------------------------------ REST


@pytest.mark.parametrize("url,rule", ALWAYS_REFUSED.items())
def test_rest_refuses_a_provider_base_url_naming_the_field_and_rule(admin_api, url, rule):
    text = refusal(admin_api.post("/api/providers/", {"slug": "evil", "kind": "ollama", "baseUrl": url},
                                  format="json"), "baseUrl")
    assert f"({rule})" in text
    assert not Provider.objects.filter(slug="evil").exists()


def test_rest_refuses_a_hosted_kind_on_loopback_and_accepts_a_local_kind(admin_api):
    text = refusal(admin_api.post("/api/providers/", {"slug": "redis", "kind": "groq",
                                                       "baseUrl": "http://127.0.0.1:6379"}, format="json"), "baseUrl")
    assert "(private)" in text and "AFMTS_ALLOW_PRIVATE_UPSTREAMS" in text
    ok = admin_api.post("/api/providers/", {"slug": "vllm", "kind": "openai_compatible",
                                            "baseUrl": "http://127.0.0.1:8000"}, format="json")
    assert ok.status_code == 201, ok.content


def test_rest_refuses_a_name_that_resolves_to_loopback_for_a_hosted_kind(admin_api):
    text = refusal(admin_api.post("/api/providers/", {"slug": "sneaky", "kind": "openai",
                                                       "baseUrl": "http://localhost:6379"}, format="json"), "baseUrl")
    assert "localhost (127.0.0.1)" in text


def test_rest_refuses_changing_a_provider_to_a_bad_url(admin_api, make_provider):
    provider = make_provider("groq")
    response = admin_api.patch(f"/api/providers/{provider.pk}", {"baseUrl": "http://10.0.0.1:6379"}, format="json")
    assert "(private)" in refusal(response, "baseUrl")
    provider.refresh_from_db()
    assert provider.base_url == "https://api.groq.com/openai"


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://[::ffff:169.254.169.254]/",
                                 "http://0.0.0.0:22/", "ftp://example.com/", "http://2852039166/"])
def test_rest_refuses_a_model_endpoint(admin_api, url):
    response = admin_api.post("/api/models/register", {"name": "m", "provider": "meta", "providerKind": "openai",
                                                       "endpoint": url}, format="json")
    assert "outbound URL policy" in refusal(response, "endpoint")
    assert not Provider.objects.filter(slug="meta").exists()


def test_rest_refuses_a_model_endpoint_on_loopback_for_a_hosted_kind(admin_api):
    response = admin_api.post("/api/models/register", {"name": "m", "provider": "groq",
                                                       "endpoint": "http://127.0.0.1:6379"}, format="json")
    assert "(private)" in refusal(response, "endpoint")


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://127.0.0.1:6379/", "http://metadata.google.internal/",
                                 "http://0xa9fea9fe/"])
def test_rest_refuses_an_agent_endpoint(admin_api, url):
    response = admin_api.post("/api/agents/register", {"name": "a1", "endpoint": url}, format="json")
    assert "outbound URL policy" in refusal(response, "endpoint")
    assert not Agent.objects.filter(name="a1").exists()


# ------------------------------------------------------------------ admin, manage.py, services


def test_admin_forms_refuse_bad_urls(db):
    form = ProviderForm(data={"slug": "x", "name": "x", "kind": "groq", "base_url": "http://127.0.0.1:6379",
                              "discovery_interval": 30, "status": "unknown", "failures": 0, "metadata": "{}"})
    assert not form.is_valid()
    assert "(private)" in " ".join(form.errors["base_url"])
    agent = AgentForm(data={"name": "a", "endpoint": "http://169.254.169.254/", "status": "online",
                            "capabilities": "[]", "metadata": "{}"})
    assert not agent.is_valid()
    assert "(link_local)" in " ".join(agent.errors["endpoint"])


def test_register_provider_command_refuses_a_bad_url(db):
    with pytest.raises(CommandError, match=r"--base-url: .*\(private\)"):
        call_command("register_provider", "openai", "--base-url", "http://localhost:6379")
    assert not Provider.objects.exists()


def test_services_refuse_what_bypasses_the_forms(db):
    from rest_framework.exceptions import ValidationError

    from registry import services

    with pytest.raises(ValidationError):
        services.provider_create(slug="m", kind="openai", base_url="http://169.254.169.254")
    with pytest.raises(ValidationError):
        services.agent_register(name="a", fields={"endpoint": "http://[::ffff:a9fe:a9fe]/"})
    assert not Provider.objects.exists() and not Agent.objects.exists()
