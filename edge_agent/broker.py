"""How every MQTT client of the project reaches the broker: its address, its
TLS client context (mutual TLS when a client certificate is given) and the
keepalive. Shared by the gateway's uplink, the receiver, `watch` and
`cmd send`; the command line builds it from --broker/--ca/--cert/--key
(edge_agent/cli/common.py).
"""

import os
import ssl


class TLSConfigError(ValueError):
    """The TLS files given cannot be used (message says which and why)."""


def client_context(ca_file, cert_file=None, key_file=None):
    """A context that verifies the broker against ``ca_file`` and, when
    ``cert_file`` is given, presents that client certificate."""
    for label, path in (("--ca", ca_file), ("--cert", cert_file), ("--key", key_file)):
        if path is not None and not os.path.isfile(path):
            raise TLSConfigError("%s %s: no such file" % (label, path))
    if (cert_file is None) != (key_file is None):
        raise TLSConfigError("--cert and --key go together: give both or neither")
    # PROTOCOL_TLS_CLIENT verifies the certificate and the host name like
    # create_default_context, but trusts no CA until told: the default
    # context also loads the system's ~140 public CAs, and anyone holding a
    # publicly trusted certificate for the broker's name could then pose as
    # the broker. Only --ca is trusted.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise TLSConfigError("--ca %s: not a PEM CA certificate (%s)" % (ca_file, exc.reason)) from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise TLSConfigError(
                "--cert %s / --key %s: cannot load (%s); check they are PEM and belong together"
                % (cert_file, key_file, exc.reason)
            ) from None
    return context


class BrokerSettings:
    """Where and how to reach the broker. ``tls_context`` None means
    plaintext, which only --insecure allows."""

    def __init__(self, host, port, tls_context=None, keepalive_s=30):
        self.host = host
        self.port = port
        self.tls_context = tls_context
        self.keepalive_s = keepalive_s

    def describe(self):
        return "%s:%d (%s)" % (self.host, self.port, "TLS" if self.tls_context else "plaintext")
