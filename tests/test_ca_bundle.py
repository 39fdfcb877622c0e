"""The CA bundle the template's deploy tests give their clients (pythonanywhere_fake.py), on a
machine whose package index is reached through a TLS-intercepting proxy with its own CA."""

import os
import ssl
from pathlib import Path

import certifi
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from . import servers
from .pythonanywhere_fake import trusted_already

# The proxy's CA may sit in any place a client reads; the bundle must keep it beside the stand-in's.

PLACES = ("PIP_CERT", "pip.conf", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(scope="module")
def proxy_ca(tmp_path_factory) -> Path:
    ca, _, _ = servers.make_certificates(tmp_path_factory.mktemp("proxy"))
    return ca


def trusted(bundle_text: str, tmp_path: Path) -> list[bytes]:
    """The CAs a client that loads this bundle trusts (DER), as OpenSSL reads them."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(bundle_text)
    return ssl.create_default_context(cafile=str(bundle)).get_ca_certs(binary_form=True)


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@example(places={"SSL_CERT_DIR"})  # the folder of OpenSSL's default verify paths
@given(places=st.sets(st.sampled_from(PLACES), min_size=1))
def test_the_ca_bundle_keeps_every_ca_the_machine_trusts(proxy_ca, tmp_path_factory, places):
    folder = tmp_path_factory.mktemp("ca")
    pem = proxy_ca.read_text()
    (folder / "proxy.pem").write_text(pem)  # in a c_rehash'd folder it would be <hash>.0 too
    (folder / "pip.conf").write_text(f"[global]\ncert = {folder / 'proxy.pem'}\n")
    where = {"PIP_CERT": folder / "proxy.pem", "REQUESTS_CA_BUNDLE": folder / "proxy.pem",
             "CURL_CA_BUNDLE": folder / "proxy.pem", "SSL_CERT_FILE": folder / "proxy.pem",
             "SSL_CERT_DIR": folder, "PIP_CONFIG_FILE": folder / "pip.conf"}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for name in where:
            patch.delenv(name, raising=False)
        patch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip reads no config file
        for place in places:
            name = "PIP_CONFIG_FILE" if place == "pip.conf" else place
            patch.setenv(name, str(where[name]))
        text = trusted_already()

    cas = trusted(text, folder)
    assert ssl.PEM_cert_to_DER_cert(pem) in cas, places
    assert set(trusted(Path(certifi.where()).read_text(), folder)) <= set(cas), "certifi's CAs stay"
