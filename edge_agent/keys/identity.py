"""Device identity: the key a device signs its signals with.

An identity directory holds:

    identity.toml   device_id and algorithm ("EdDSA" or "HMAC256"); public
    device.key      Ed25519 private key, PKCS#8 PEM, mode 0600   (EdDSA)
    device.secret   32 random bytes, mode 0600                   (HMAC256)

`edge-agent keys init` creates it; the agent loads it with --identity.
Private material is never printed or logged; a key file readable by group
or others is refused (as ssh does), with the chmod that fixes it.
"""

import os
import stat
import tomllib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.core import cose
from edge_agent.core.signals import check_device_id

EDDSA = "EdDSA"
HMAC256 = "HMAC256"
ALGORITHMS = (EDDSA, HMAC256)
HMAC_KEY_BYTES = 32


class IdentityError(ValueError):
    """An identity cannot be created or loaded (the message says how to fix it)."""


def write_private(path, data):
    """Create ``path`` with mode 0600 from the first byte (no window in which
    it is readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read_private(path, error=IdentityError, create="create the identity with `edge-agent keys init`"):
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error("%s: missing; %s" % (path, create)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error("%s: readable by group or others (mode %o); run `chmod 600 %s`" % (path, mode & 0o777, path))
    with open(path, "rb") as f:
        return f.read()


def load_toml(path, error, missing):
    """The table in the TOML file ``path``; raises ``error`` with the
    ``missing`` message (how to make the file) when there is none, and with
    the reason when it is a directory or not valid TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(missing) from None
    except IsADirectoryError:
        raise error("%s: is a directory; name the TOML file" % path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error("%s: not valid TOML (%s)" % (path, exc)) from None


def new_ed25519_key(path):
    """A new Ed25519 private key, written to ``path`` (PKCS#8 PEM, mode 0600)."""
    key = Ed25519PrivateKey.generate()
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return key


def load_ed25519_key(path, error, create):
    """The Ed25519 private key in ``path``, refused as ``error`` when it is
    missing (``create`` says how to make it), readable by others or not a
    PEM Ed25519 key."""
    pem = read_private(path, error, create)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise error("%s: not a PEM private key (%s)" % (path, exc)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise error("%s: not an Ed25519 key" % path)
    return key


def public_key_bytes(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Identity:
    def __init__(self, device_id, algorithm, private_key=None, secret=None, directory=None):
        self.device_id = device_id
        self.algorithm = algorithm
        self._private_key = private_key
        self._secret = secret
        self.directory = directory

    def __repr__(self):  # never show key material
        return "Identity(%r, %s)" % (self.device_id, self.algorithm)

    @property
    def kid(self):
        return self.device_id.encode()

    def seal(self, payload):
        """Wrap ``payload`` (a signal's CBOR) in this device's COSE envelope."""
        if self.algorithm == EDDSA:
            return cose.sign1(payload, self.kid, self._private_key.sign)
        return cose.mac0(payload, self.kid, self._secret)

    def public_key_hex(self):
        if self.algorithm != EDDSA:
            raise IdentityError("an HMAC256 identity has no public key; the receiver needs the shared secret")
        return public_key_bytes(self._private_key).hex()

    def registry_entry(self, model=None, include_secret=False):
        """The TOML block that registers this device with a receiver."""
        lines = ["[devices.%s]" % self.device_id, 'algorithm = "%s"' % self.algorithm]
        if model:
            lines.append('model = "%s"' % model)
        if self.algorithm == EDDSA:
            lines.append('public_key = "%s"' % self.public_key_hex())
        elif include_secret:
            lines.append('secret = "%s"' % self._secret.hex())
        else:
            raise IdentityError(
                "an HMAC256 device is registered with its shared secret: pass --include-secret --output "
                "devices.toml (the registry is kept mode 0600)"
            )
        return "\n".join(lines) + "\n"


def append_registry_entry(path, entry, device_id, secret):
    """Append ``entry`` (registry_entry's text for ``device_id``) to the
    receiver's registry ``path``. A new file is created mode 0600 from the
    first byte; an existing one must be valid TOML, must not register the
    device already (a second block would make the file invalid) and, when
    the entry holds a ``secret``, must not be readable by group or others
    (refused with the chmod that fixes it, nothing written). Returns True
    if the file was created."""
    created = True
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        created = False
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            raise IdentityError("%s: cannot open (%s)" % (path, exc.strerror)) from None
    except OSError as exc:
        raise IdentityError("%s: cannot create (%s)" % (path, exc.strerror)) from None
    with os.fdopen(fd, "r+b") as f:
        if created:
            os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
            text = b""
        else:
            mode = os.fstat(fd).st_mode  # the file opened, not the name: no race with a rename
            if not stat.S_ISREG(mode):
                raise IdentityError("%s: not a regular file" % path)
            if secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise IdentityError("%s is readable by group or others (mode %o) and would hold %s's HMAC secret; "
                                    "run `chmod 600 %s` first (nothing written)"
                                    % (path, stat.S_IMODE(mode), device_id, path))
            text = f.read()
            try:
                devices = tomllib.loads(text.decode()).get("devices", {})
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise IdentityError("%s: not valid TOML (%s); fix it before appending" % (path, exc)) from None
            if isinstance(devices, dict) and device_id in devices:
                raise IdentityError("%s already registers device %s; edit its block there instead (nothing written)"
                                    % (path, device_id))
        separator = b"" if not text else (b"\n" if text.endswith(b"\n") else b"\n\n")
        f.write(separator + entry.encode())
    return created


def create_identity(directory, device_id, algorithm=EDDSA):
    reason = check_device_id(device_id)
    if reason:
        raise IdentityError("--device-id: " + reason)
    if algorithm not in ALGORITHMS:
        raise IdentityError("algorithm must be one of %s" % ", ".join(ALGORITHMS))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    manifest = os.path.join(directory, "identity.toml")
    if os.path.exists(manifest):
        raise IdentityError("%s already holds an identity; refusing to overwrite a device's key" % directory)
    if algorithm == EDDSA:
        key = new_ed25519_key(os.path.join(directory, "device.key"))
        identity = Identity(device_id, algorithm, private_key=key, directory=directory)
    else:
        secret = os.urandom(HMAC_KEY_BYTES)
        write_private(os.path.join(directory, "device.secret"), secret)
        identity = Identity(device_id, algorithm, secret=secret, directory=directory)
    with open(manifest, "w") as f:
        f.write('# edge-agent device identity (public; the key is beside it, mode 0600)\n')
        f.write('device_id = "%s"\nalgorithm = "%s"\n' % (device_id, algorithm))
    return identity


def load_identity(directory):
    manifest = os.path.join(directory, "identity.toml")
    data = load_toml(manifest, IdentityError, "%s: no identity here; create one with `edge-agent keys init --dir %s "
                     "--device-id ID`" % (directory, directory))
    device_id = data.get("device_id")
    algorithm = data.get("algorithm")
    reason = check_device_id(device_id)
    if reason:
        raise IdentityError("%s: device_id: %s" % (manifest, reason))
    if algorithm == EDDSA:
        key = load_ed25519_key(os.path.join(directory, "device.key"), IdentityError,
                               "create the identity with `edge-agent keys init`")
        return Identity(device_id, algorithm, private_key=key, directory=directory)
    if algorithm == HMAC256:
        path = os.path.join(directory, "device.secret")
        secret = read_private(path)
        if len(secret) < cose.MIN_HMAC_KEY:
            raise IdentityError("%s: %d bytes, an HMAC key needs at least %d" % (path, len(secret), cose.MIN_HMAC_KEY))
        return Identity(device_id, algorithm, secret=secret, directory=directory)
    raise IdentityError("%s: algorithm must be one of %s, not %r" % (manifest, ", ".join(ALGORITHMS), algorithm))


def ed25519_verifier_from_hex(text, error, make=None):
    """ed25519_verifier (or ``make``'s verifier) for a public key written
    as 64 hex digits (as devices.toml and trusted-operators files hold
    it), else ``error``."""
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise error("public_key must be 64 hex digits (a raw Ed25519 public key)")
    return (make or ed25519_verifier)(raw)


def ed25519_verifier(public_key_raw):
    """A ``verify(signature, data) -> bool`` for the core's COSE verification."""
    public_key = Ed25519PublicKey.from_public_bytes(public_key_raw)

    def verify(signature, data):
        try:
            public_key.verify(signature, data)
            return True
        except InvalidSignature:
            return False

    return verify
