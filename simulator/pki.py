"""A throwaway PKI for simulated deployments: a CA, a broker certificate for
127.0.0.1/localhost, and client certificates (mutual TLS).

For the demo and tests only: keys are generated fresh each run, written
0600, and never reused. Real devices get their identity from
`edge-agent keys` and the operator's own CA.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 2


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge-agent simulator"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_pair(directory, stem, cert, key):
    cert_path = os.path.join(directory, stem + ".crt")
    key_path = os.path.join(directory, stem + ".key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return cert_path, key_path


class DevPKI:
    """Creates ca.crt, broker.crt/.key and <client>.crt/.key in ``directory``."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        self._not_before = now - datetime.timedelta(minutes=5)
        self._not_after = now + datetime.timedelta(days=VALID_DAYS)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_name = _name("edge-agent simulator CA")
        ca = (
            self._builder(self._ca_name, self._ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_cert = os.path.join(directory, "ca.crt")
        with open(self.ca_cert, "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        self.broker_cert, self.broker_key = self._issue(
            "broker", "localhost", ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        )

    def _builder(self, subject, public_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
        )

    def _issue(self, stem, common_name, usage, alt_names=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(_name(common_name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        return _write_pair(self.directory, stem, cert, key)

    def client(self, name):
        """Issue a client certificate whose CN is ``name``; returns (cert, key)."""
        return self._issue(name, name, ExtendedKeyUsageOID.CLIENT_AUTH)

    def der(self, pem_path):
        """Write a DER copy of a PEM certificate or private key made here
        (``x.crt`` -> ``x.crt.der``) and return its path. MicroPython's ssl
        (mbedTLS) loads DER only; keys stay 0600."""
        with open(pem_path, "rb") as f:
            pem = f.read()
        der_path = pem_path + ".der"
        if b"PRIVATE KEY" in pem:
            key = serialization.load_pem_private_key(pem, password=None)
            _write_private(der_path, key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        else:
            with open(der_path, "wb") as f:
                f.write(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))
        return der_path
