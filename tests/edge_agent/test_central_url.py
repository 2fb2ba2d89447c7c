"""Which central URLs an agent may send its secrets to, and how enroll records its choice."""

import pytest

from edge_agent.client import CentralClient, check_central_url
from edge_agent.config import load_config, write_settings
from edge_agent.errors import ERR_CONFIG, ERR_INSECURE_CENTRAL, EdgeError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10/",
        "http://localhost:8080",
        "http://LOCALHOST.:8080",
        "http://[::1]:8080",
        "http://[::ffff:127.0.0.1]:8080",
        "https://registry.example",
        "https://10.0.0.5:8443",
    ],
)
def test_https_and_this_machine_are_allowed(url):
    assert check_central_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://registry:8080",
        "http://10.0.0.5:8080",
        "http://[fe80::1]:8080",
        "http://localhost.evil.example",
        "http://128.0.0.1",
    ],
)
def test_plain_http_elsewhere_needs_insecure(url):
    with pytest.raises(EdgeError) as caught:
        check_central_url(url)
    assert caught.value.code == ERR_INSECURE_CENTRAL
    assert "https" in caught.value.message and "--insecure" in caught.value.message
    assert check_central_url(url, insecure=True) == url


@pytest.mark.parametrize("url", ["ftp://registry", "registry:8080", "http://", ""])
def test_other_urls_are_config_errors(url):
    with pytest.raises(EdgeError) as caught:
        check_central_url(url, insecure=True)
    assert caught.value.code == ERR_CONFIG


def test_a_missing_ca_bundle_is_a_config_error(tmp_path):
    with pytest.raises(EdgeError) as caught:
        CentralClient("https://registry.example", None, 1.0, ca_bundle=str(tmp_path / "no.pem"))
    assert caught.value.code == ERR_CONFIG and "no.pem" in caught.value.message


def test_settings_update_an_existing_edge_toml_in_place(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text("# mine\n[edge]\nlease_block = 50\ninsecure = false # was\n")
    write_settings(tmp_path, {"insecure": True, "ca_bundle": "/etc/plant-ca.pem"})
    text = path.read_text()
    assert text.startswith("# mine\n[edge]\n") and "lease_block = 50" in text
    assert text.count("insecure") == 1
    cfg = load_config(tmp_path, environ={})
    assert (cfg.insecure, cfg.ca_bundle, cfg.lease_block) == (True, "/etc/plant-ca.pem", 50)
    assert path.stat().st_mode & 0o777 == 0o600
    # The environment still wins over the file.
    assert load_config(tmp_path, environ={"LINELEDGER_EDGE_INSECURE": "false"}).insecure is False


def test_settings_make_an_edge_section_when_the_file_has_none(tmp_path):
    (tmp_path / "edge.toml").write_text("# nothing yet\n")
    write_settings(tmp_path, {"insecure": True})
    assert load_config(tmp_path, environ={}).insecure is True


def test_a_relative_ca_bundle_is_relative_to_the_home(tmp_path):
    write_settings(tmp_path, {"ca_bundle": "plant-ca.pem"})
    assert load_config(tmp_path, environ={}).ca_bundle_path == str(tmp_path / "plant-ca.pem")
