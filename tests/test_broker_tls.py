"""The TLS client context every MQTT client of the project uses
(edge_agent/broker.py): it trusts the --ca file and nothing else, checks
the broker's name, and refuses TLS below 1.2."""

import socket
import ssl

import pytest

from edge_agent.broker import TLSConfigError, client_context


def test_only_the_given_ca_is_trusted(pki):
    context = client_context(pki.ca_cert)
    # The system store holds ~140 public CAs here; none may count.
    assert context.cert_store_stats()["x509_ca"] == 1
    [ca] = context.get_ca_certs()
    assert dict(x[0] for x in ca["subject"])["commonName"] == "edge-agent simulator CA"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_broker_signed_by_another_ca_is_refused(pki, broker, tmp_path):
    from simulator.fixtures.pki import DevPKI

    other = DevPKI(str(tmp_path / "other"))  # a CA of the same name, other keys
    context = client_context(other.ca_cert)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_bad_files_are_refused_with_the_option_named(tmp_path):
    with pytest.raises(TLSConfigError, match="--ca .*no such file"):
        client_context(str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="--ca .*not a PEM CA certificate"):
        client_context(str(junk))
