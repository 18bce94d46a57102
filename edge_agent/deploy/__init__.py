"""Running the agent as a service on a gateway: its config file
(config.py, agent.toml), systemd's notify protocol (sd_notify.py) and the
task that reports readiness, status and watchdog pings (service.py),
journald-friendly logs (logs.py), `edge-agent doctor`'s checks (doctor.py)
and the files a device maker installs (files/: the unit, an annotated
agent.toml)."""
