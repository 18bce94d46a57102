"""`edge-agent doctor`'s checks on a gateway, each a Result with a verdict
and, when it is not ok, the fix. Access is judged for the service user
(its uid, its groups and the unit's SupplementaryGroups=) from the files'
owners and modes, so root can check for the user the service runs as.

Checks: the board file; every serial port (exists, a character device,
readable and writable by the user); the groups the unit asks for exist;
the GPIO chips of the board's outputs; the clock synchronised (the
kernel's NTP state: signal times are evidence); the identity and the
permissions of every key; the TLS files and certificates' expiry; the
broker reachable with TLS (and its certificate's expiry); disk free for
the store's bound."""

import ctypes
import datetime
import grp
import os
import pwd
import shutil
import socket
import ssl
import stat

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
EXPIRY_WARNING_DAYS = 30


class Result:
    def __init__(self, name, verdict, detail, fix=None):
        self.name = name
        self.verdict = verdict
        self.detail = detail
        self.fix = fix

    def lines(self):
        out = ["%-4s  %s: %s" % (self.verdict, self.name, self.detail)]
        if self.fix and self.verdict in (WARN, FAIL):
            out.append("      fix: " + self.fix)
        return out


class Account:
    """Whom access is judged for: a uid and every gid it has."""

    def __init__(self, name, uid, gids):
        self.name = name
        self.uid = uid
        self.gids = set(gids)

    @classmethod
    def named(cls, name, extra_groups=()):
        """``name``'s uid, primary group, supplementary groups in
        /etc/group, and ``extra_groups`` that exist (SupplementaryGroups=)."""
        entry = pwd.getpwnam(name)
        gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
        for group in extra_groups:
            try:
                gids.add(grp.getgrnam(group).gr_gid)
            except KeyError:
                pass  # reported by check_groups
        return cls(name, entry.pw_uid, gids)


def can(account, st, want):
    """Does ``account`` get ``want`` (os.R_OK | os.W_OK bits) on a file
    with stat ``st``? The kernel's rule: owner, else group, else other."""
    if account.uid == 0:
        return True
    if st.st_uid == account.uid:
        shift = 6
    elif st.st_gid in account.gids:
        shift = 3
    else:
        shift = 0
    bits = (st.st_mode >> shift) & 0o7
    return (bits & (4 if want & os.R_OK else 0)) == (4 if want & os.R_OK else 0) and \
        (bits & (2 if want & os.W_OK else 0)) == (2 if want & os.W_OK else 0)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_board(path):
    """(Result, Board or None)."""
    from edge_agent.boardfile import load_board
    from edge_agent.core.board import BoardError

    try:
        board = load_board(path)
    except BoardError as exc:
        problems = "; ".join(p.describe() for p in exc.problems)
        return Result("board file", FAIL, "%s: %s" % (path, problems), "edge-agent board check %s" % path), None
    return Result("board file", OK, "%s: board %s, %d buses, %d sensors" % (path, board.name, len(board.buses),
                                                                             len(board.sensors))), board


SERIAL_MISSING = ("plug the device in, or set its path (agent.ports / the board file); `ls -l /dev/serial/by-id/` "
                  "lists serial adapters by a stable name")
GPIO_MISSING = ("on a Raspberry Pi the chips are /dev/gpiochip0 and up (`gpiodetect` lists them); fix the board "
                "file's outputs, or run with gpio = \"simulated\" without hardware")


def check_device(label, path, account, group_hint, missing_fix=SERIAL_MISSING):
    """A serial port or GPIO chip: exists, a character device, read and
    write for ``account``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Result(label, FAIL, "%s does not exist" % path, missing_fix)
    except PermissionError:
        return Result(label, FAIL, "%s: cannot stat (permission denied)" % path, "check the directories' permissions")
    if not stat.S_ISCHR(st.st_mode):
        return Result(label, FAIL, "%s is not a character device" % path, "name the device node under /dev")
    if not can(account, st, os.R_OK | os.W_OK):
        group = _group_name(st.st_gid)
        return Result(label, FAIL, "%s (owner %s, group %s, mode %03o) is not readable and writable by %s" % (
            path, st.st_uid, group, stat.S_IMODE(st.st_mode), account.name),
            "add %s to group %s (usermod -aG %s %s; the shipped unit's SupplementaryGroups=%s does it for the "
            "service), or a udev rule giving the device to that group" % (account.name, group, group, account.name,
                                                                        group_hint))
    if account.uid == os.geteuid():
        try:  # the user running doctor is the one judged: open it for real
            os.close(os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
        except OSError as exc:
            return Result(label, FAIL, "%s: cannot open: %s" % (path, exc.strerror),
                          "a device busy or gone: check `fuser %s`" % path)
    return Result(label, OK, "%s readable and writable by %s" % (path, account.name))


def check_serial_ports(board, port_overrides, console_ports, account):
    results = []
    for bus in sorted(set(port_overrides) - set(board.buses)):
        results.append(Result("serial port %s" % bus, FAIL, "agent.ports names bus %r, which %s does not have" % (
            bus, board.source), "buses of the board: %s" % ", ".join(sorted(board.buses))))
    for bus in board.buses.values():
        path = port_overrides.get(bus.id, bus.port)
        results.append(check_device("serial port %s" % bus.id, path, account, "dialout"))
    for path in console_ports:
        results.append(check_device("console port", path, account, "dialout"))
    return results


def check_groups(names):
    results = []
    for name in names:
        try:
            grp.getgrnam(name)
        except KeyError:
            results.append(Result("group %s" % name, FAIL, "does not exist; systemd refuses to start a unit whose "
                                  "SupplementaryGroups= names it (status=216/GROUP)",
                                  "groupadd --system %s (and give it the devices: a udev rule), or remove it from "
                                  "the unit's SupplementaryGroups=" % name))
        else:
            results.append(Result("group %s" % name, OK, "exists"))
    return results


def check_gpio(board, account):
    outputs = getattr(board, "outputs", None) or {}
    if not outputs:
        return [Result("GPIO", SKIP, "the board declares no outputs")]
    chips = sorted({output.chip for output in outputs.values()})
    return [check_device("GPIO chip", chip, account, "gpio", GPIO_MISSING) for chip in chips]


TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
STA_UNSYNC = 0x40


def kernel_clock_state():
    """(adjtimex return value, status flags, maxerror in µs): the kernel's
    view of NTP synchronisation, which chrony and systemd-timesyncd keep."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(512)  # struct timex, modes 0: read only
    state = libc.adjtimex(buf)
    raw = buf.raw
    return state, int.from_bytes(raw[40:44], "little", signed=True), int.from_bytes(raw[24:32], "little", signed=True)


def check_clock(read=kernel_clock_state):
    try:
        state, status, maxerror = read()
    except (OSError, AttributeError) as exc:
        return Result("clock", WARN, "cannot read the kernel's clock state (%s)" % exc, "check timedatectl")
    fix = ("enable a time service: systemctl enable --now systemd-timesyncd (or chrony) with a reachable NTP "
           "server; signals are stamped with this clock and their times are evidence")
    if state == TIME_ERROR or status & STA_UNSYNC:
        return Result("clock", FAIL, "not synchronised (kernel: unsynchronised, max error %.1f s)" % (maxerror / 1e6),
                      fix)
    return Result("clock", OK, "synchronised (max error %.3f s)" % (maxerror / 1e6))


def check_readable(label, path, account):
    """A file the service reads (agent.toml): readable by the user."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return Result(label, FAIL, "%s: %s" % (path, exc.strerror), "check the path")
    if not can(account, st, os.R_OK):
        return Result(label, FAIL, "%s (owner %s, group %s, mode %03o) is not readable by %s" % (
            path, st.st_uid, _group_name(st.st_gid), stat.S_IMODE(st.st_mode), account.name),
            "chmod 644 %s (it holds paths, not secrets)" % path)
    return Result(label, OK, "%s valid, readable by %s" % (path, account.name))


def check_private_file(label, path, account):
    """A key: the service user can read it, nobody else can."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return Result(label, FAIL, "%s: %s" % (path, exc.strerror), "check the path")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        return Result(label, FAIL, "%s is mode %03o: readable by every user" % (path, mode),
                      "chmod 600 %s (0640 with group %s)" % (path, account.name))
    if mode & 0o070 and st.st_gid not in account.gids:
        return Result(label, FAIL, "%s is mode %03o with group %s, which %s is not in" % (
            path, mode, _group_name(st.st_gid), account.name), "chmod 600 %s" % path)
    if not can(account, st, os.R_OK):
        return Result(label, FAIL, "%s (owner %s, mode %03o) is not readable by %s" % (path, st.st_uid, mode,
                                                                                       account.name),
                      "chown %s %s" % (account.name, path))
    return Result(label, OK, "%s mode %03o, readable by %s only" % (path, mode, account.name))


def check_identity(directory, account):
    from edge_agent.keys.identity import IdentityError, load_identity

    try:
        identity = load_identity(directory)
    except IdentityError as exc:
        return [Result("identity", FAIL, str(exc), "edge-agent keys init --dir %s --device-id ID" % directory)]
    results = [Result("identity", OK, "%s: device %s (%s)" % (directory, identity.device_id, identity.algorithm))]
    for name in ("device.key", "device.secret"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            results.append(check_private_file("identity key", path, account))
    return results


def check_certificate(label, path, now=None):
    """A PEM certificate's expiry: FAIL when expired, WARN within 30 days."""
    from cryptography import x509

    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError) as exc:
        return Result(label, FAIL, "%s: cannot read a PEM certificate (%s)" % (path, exc), "check the file")
    return _expiry(label, "%s (%s)" % (path, cert.subject.rfc4514_string()), cert.not_valid_before_utc,
                   cert.not_valid_after_utc, now)


def _expiry(label, what, not_before, not_after, now):
    fix = "issue a new certificate and install it before the old one expires"
    if now > not_after:
        return Result(label, FAIL, "%s expired on %s" % (what, not_after.strftime("%Y-%m-%d")), fix)
    if now < not_before:
        return Result(label, FAIL, "%s is not valid before %s (or this clock is wrong)" % (
            what, not_before.strftime("%Y-%m-%d")), "check the clock, then the certificate")
    days = (not_after - now).days
    if days < EXPIRY_WARNING_DAYS:
        return Result(label, WARN, "%s expires in %d days (%s)" % (what, days, not_after.strftime("%Y-%m-%d")), fix)
    return Result(label, OK, "%s valid until %s (%d days)" % (what, not_after.strftime("%Y-%m-%d"), days))


def check_broker(host, port, context, timeout_s=5.0, now=None):
    """Connect with TLS (the agent's context: its CA, its client
    certificate) and report the broker certificate's expiry."""
    label = "broker"
    if context is None:
        return Result(label, WARN, "%s:%d: plaintext (insecure = true): not checked" % (host, port),
                      "use TLS: remove insecure and set broker.ca")
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                peer = tls.getpeercert()
                version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return Result(label, FAIL, "%s:%d: the broker's certificate does not verify: %s" % (host, port,
                                                                                         exc.verify_message),
                      "broker.ca must be the CA that signed the broker's certificate, issued for the name %s" % host)
    except (ssl.SSLError, OSError) as exc:
        return Result(label, FAIL, "%s:%d: no TLS connection: %s" % (host, port, exc),
                      "check the address, the network and the firewall (port %d)" % port)
    not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(peer["notAfter"]), datetime.timezone.utc)
    not_before = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(peer["notBefore"]), datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    result = _expiry("broker", "%s:%d, %s, certificate" % (host, port, version), not_before, not_after, now)
    return result


def check_disk(store_dir, max_bytes):
    """Free space for the store to reach its bound."""
    probe = store_dir
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    used = 0
    if os.path.isdir(store_dir):
        for directory, _, files in os.walk(store_dir):
            for name in files:
                try:
                    used += os.lstat(os.path.join(directory, name)).st_size
                except OSError:
                    pass
    free = shutil.disk_usage(probe).free
    needed = max(0, max_bytes - used)
    if free < needed:
        return Result("disk", FAIL, "%s: %d MiB free, the store may grow %d MiB more (bound %d MiB)" % (
            store_dir, free >> 20, needed >> 20, max_bytes >> 20),
            "free space, or lower store.max_bytes (a full disk is ridden out, but telemetry is evicted sooner)")
    return Result("disk", OK, "%s: %d MiB free for a store bound of %d MiB (%d MiB used)" % (
        store_dir, free >> 20, max_bytes >> 20, used >> 20))
