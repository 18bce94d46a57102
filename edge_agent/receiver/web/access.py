"""Who may see the web view, and who may change anything through it.

Read-only by default. Every page needs one of:
- the read token (``--http-token-file`` or ``EA_HTTP_TOKEN``), as
  ``Authorization: Bearer TOKEN`` or, for a browser, the cookie the login
  form sets (the token is posted, never put in a URL, where access logs and
  browser history would keep it);
- a TLS client certificate signed by ``--http-ca`` (mutual TLS, as the
  broker connection does it).
Writing (acknowledging a ticket) needs the write token
(``--http-write-token-file`` or ``EA_HTTP_WRITE_TOKEN``), which also reads;
every write is audited with who did it. There is no default token: with
none given and no client CA the view refuses to start.
"""

import hmac
import ipaddress
import logging
import os
import ssl
import stat

from edge_agent.broker import TLSConfigError

log = logging.getLogger("edge_agent")

READ, WRITE = "read", "write"
COOKIE = "ea_token"
TOKEN_ENV = "EA_HTTP_TOKEN"
WRITE_TOKEN_ENV = "EA_HTTP_WRITE_TOKEN"
# A token someone could guess or brute-force over HTTP is no access
# control: `openssl rand -hex 32` gives 64 characters.
MIN_TOKEN_CHARS = 16


class AccessError(ValueError):
    """The access options cannot be used (the message says which and how to fix)."""


def load_token(path, env, option):
    """The token from ``path`` (its first line) or, without it, the
    environment variable ``env``; None if neither. Never logged."""
    if path:
        try:
            with open(path) as f:
                token = f.readline().strip()
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise AccessError("%s %s: cannot read it (%s)" % (option, path, exc.strerror)) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s %s is readable by group or others (mode %03o); run `chmod 600 %s`",
                        option, path, stat.S_IMODE(mode), path)
        where = "%s %s" % (option, path)
    else:
        token = os.environ.get(env, "").strip()
        if not token:
            return None
        where = env
    if len(token) < MIN_TOKEN_CHARS:
        raise AccessError("%s: the token is %d characters, fewer than %d; make one with `openssl rand -hex 32`"
                          % (where, len(token), MIN_TOKEN_CHARS))
    return token


class Access:
    """The view's credentials: ``read_token``, ``write_token`` (either may be
    None) and whether TLS client certificates are checked (``client_ca``)."""

    def __init__(self, read_token=None, write_token=None, client_ca=False):
        if not (read_token or write_token or client_ca):
            raise AccessError("the web view needs a credential and has no default: --http-token-file FILE "
                              "(or %s), or --http-ca PEM for TLS client certificates" % TOKEN_ENV)
        if read_token and write_token and hmac.compare_digest(read_token, write_token):
            raise AccessError("the write token must differ from the read token: anyone who may look could "
                              "otherwise acknowledge")
        self.read_token = read_token
        self.write_token = write_token
        self.client_ca = client_ca

    def level(self, token, peercert=None):
        """WRITE, READ or None for a presented token (and the TLS peer's
        verified certificate, if any)."""
        if token:
            if self.write_token and hmac.compare_digest(token.encode(), self.write_token.encode()):
                return WRITE
            if self.read_token and hmac.compare_digest(token.encode(), self.read_token.encode()):
                return READ
        if self.client_ca and peercert:
            return READ
        return None


def server_context(cert_file, key_file, client_ca=None):
    """The HTTPS context: this server's certificate and key; with
    ``client_ca``, clients may present a certificate it signed (verified;
    one that fails verification ends the handshake)."""
    for label, path in (("--http-cert", cert_file), ("--http-key", key_file), ("--http-ca", client_ca)):
        if path is not None and not os.path.isfile(path):
            raise TLSConfigError("%s %s: no such file" % (label, path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise TLSConfigError("--http-cert %s / --http-key %s: cannot load (%s); check they are PEM and belong "
                             "together" % (cert_file, key_file, exc.reason)) from None
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            raise TLSConfigError("--http-ca %s: not a PEM CA certificate (%s)" % (client_ca, exc.reason)) from None
        # OPTIONAL: a browser without a certificate may still log in with a token.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
