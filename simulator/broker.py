"""A real mosquitto on a free loopback port, with a config of its own.

Used by `make demo` and by the tests' broker fixture: never a mock broker.
With a DevPKI it listens with TLS and requires a client certificate
(mutual TLS, the certificate's CN becomes the MQTT user name).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

SEARCH_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/usr/local/sbin"


class BrokerError(RuntimeError):
    """mosquitto could not be found or started (message says what to do)."""


def find_mosquitto():
    path = shutil.which("mosquitto", path=SEARCH_PATH)
    if path is None:
        raise BrokerError("mosquitto not found: run `make setup` (installs Debian's mosquitto) or `apt-get install mosquitto`")
    return path


def free_port():
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, directory, pki=None, port=None, persistent=False):
        self.directory = directory
        self.pki = pki
        self.port = port or free_port()
        self.persistent = persistent
        self.process = None
        self.log_path = os.path.join(directory, "mosquitto.log")
        self.config_path = os.path.join(directory, "mosquitto.conf")

    def _config(self):
        lines = [
            "# written by simulator/broker.py for one run",
            "listener %d 127.0.0.1" % self.port,
            "log_dest file %s" % self.log_path,
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 100000",
        ]
        if self.persistent:
            # Save sessions and queued messages after every change, so a
            # restart (even after SIGKILL) finds what subscribers had not yet
            # received. Slow for a production broker; right for tests of
            # delivery across broker crashes.
            lines += ["persistence true", "persistence_location %s/" % self.directory,
                      "autosave_on_changes true", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            # Started as root, mosquitto switches to the 'mosquitto' user,
            # which cannot read our 0700 run directory or 0600 keys. Stay
            # the user who started it: this broker is a test fixture.
            lines.append("user %s" % pwd.getpwuid(os.geteuid()).pw_name)
        if self.pki is None:
            lines.append("allow_anonymous true")
        else:
            lines += [
                "cafile %s" % self.pki.ca_cert,
                "certfile %s" % self.pki.broker_cert,
                "keyfile %s" % self.pki.broker_key,
                "require_certificate true",
                "use_identity_as_username true",
                "tls_version tlsv1.2",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s=10.0):
        os.makedirs(self.directory, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(self._config())
        self.process = subprocess.Popen(
            [find_mosquitto(), "-c", self.config_path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace").strip()
                raise BrokerError("mosquitto exited at start (code %d): %s; log: %s"
                                  % (self.process.returncode, err, self._log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError("mosquitto did not listen on 127.0.0.1:%d within %.0f s" % (self.port, timeout_s))

    def _log_tail(self):
        try:
            with open(self.log_path) as f:
                return " | ".join(f.read().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def kill(self):
        """SIGKILL, as a crash or power cut would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s=5.0):
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
