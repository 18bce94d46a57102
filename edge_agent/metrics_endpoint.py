"""The Prometheus endpoint both the agent (`run --metrics`) and the receiver
(`receiver run --metrics`) serve: prometheus_client's own HTTP server on
one registry per process, bound to loopback unless told otherwise (the
metrics name devices and components: not for the whole network)."""

import ipaddress
import logging

log = logging.getLogger("edge_agent")

DEFAULT_HOST = "127.0.0.1"


def parse_address(text, option="--metrics"):
    """'PORT', 'HOST:PORT' or '[v6]:PORT' -> (host, port); a bare port binds
    loopback. Raises ValueError saying how to write it."""
    text = str(text).strip()
    host, port = DEFAULT_HOST, text
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("%s %r: write PORT (loopback) or HOST:PORT, e.g. 127.0.0.1:9108" % (option, text))
    return host, int(port)


def serve(registry, address, what):
    """Start serving ``registry`` at ``address`` ((host, port)); returns the
    server (call .shutdown()), or None when it cannot listen: logged as an
    error, and the agent or receiver runs on without metrics (a busy port
    must not stop signals). Says so in the log, louder when not loopback."""
    from prometheus_client import start_http_server

    host, port = address
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("%s metrics: cannot listen at %s:%d (%s); running on without metrics: free the port or "
                  "choose another with --metrics", what, host, port, exc.strerror or exc)
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        log.info("%s metrics at http://%s:%d/metrics", what, host, port)
    else:
        log.warning("%s metrics at http://%s:%d/metrics, reachable beyond this machine (no authentication): "
                    "firewall it or bind 127.0.0.1", what, host, port)
    return server
