"""What `edge-agent service install` writes: the shipped unit (files/
edge-agent.service) with ExecStart= pointing at this installation's
edge-agent, and the annotated agent.toml as the config skeleton, which is
never overwritten (it is the device maker's once written)."""

import os
import sys
from importlib import resources

from edge_agent.atomic_file import atomic_write

UNIT_PATH = "etc/systemd/system/edge-agent.service"
CONFIG_PATH = "etc/edge-agent/agent.toml"
SHIPPED_EXEC = "/opt/edge-agent/bin/edge-agent"


def shipped(name):
    """The text of files/NAME, shipped in the package."""
    return resources.files("edge_agent.deploy").joinpath("files", name).read_text(encoding="utf-8")


def this_executable():
    """The edge-agent script beside this interpreter (a virtualenv's bin/),
    or 'python -m edge_agent' with this interpreter when there is none."""
    script = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "edge-agent")
    if os.access(script, os.X_OK):
        return script
    return "%s -m edge_agent" % os.path.abspath(sys.executable)


def unit_text(executable=None):
    text = shipped("edge-agent.service")
    return text.replace("ExecStart=" + SHIPPED_EXEC, "ExecStart=" + (executable or this_executable()))


def install(root="/", executable=None):
    """Write the unit (always) and the config skeleton (only when absent)
    under ``root``; returns [(path, what happened)]."""
    done = []
    unit = os.path.join(root, UNIT_PATH)
    os.makedirs(os.path.dirname(unit), exist_ok=True)
    atomic_write(unit, unit_text(executable).encode("utf-8"), mode=0o644)
    done.append((unit, "written"))
    config = os.path.join(root, CONFIG_PATH)
    # The config holds paths, no secrets: readable by the service user
    # (0644, in a 0755 directory). The keys it names are 0600/0640 files.
    os.makedirs(os.path.dirname(config), mode=0o755, exist_ok=True)
    if os.path.exists(config):
        done.append((config, "kept (it exists; the example is `edge-agent service install --print-config`)"))
    else:
        atomic_write(config, shipped("agent.toml").encode("utf-8"), mode=0o644)
        done.append((config, "written: edit it, then `edge-agent config check %s`" % config))
    return done
