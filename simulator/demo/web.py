"""The demo's last step: the fleet web view (`edge-agent receiver web`,
docs/operator-view.md) over the live run's receiver database, with a
fresh read token. It is checked (the fleet page, with the token, lists the
demo device; without it, 401) and its URL printed; with EA_DEMO_KEEP=1 it
stays open until Ctrl-C, otherwise it stops with the demo."""

import os
import secrets
import urllib.error
import urllib.request

from ..fixtures.processes import say
from ..fixtures.web_view import serve_view


def _status(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def start(db, workdir, device):
    """The view of ``db`` on a free loopback port: (Child, URL, token file)."""
    os.makedirs(workdir, exist_ok=True)
    token_file = os.path.join(workdir, "web-token")
    token = secrets.token_hex(32)
    child, base = serve_view(db, token, token_file)
    try:
        url = base + "/"
        if _status(url)[0] != 401:
            raise RuntimeError("the web view answered without a token")
        status, page = _status(url, token)
        if status != 200 or 'data-device="%s"' % device not in page:
            raise RuntimeError("the web view's fleet page does not list %s (HTTP %d)" % (device, status))
    except BaseException:
        child.stop()
        raise
    return child, url, token_file


def wait_for_ctrl_c(child):
    say("the web view stays open (EA_DEMO_KEEP): Ctrl-C to stop it")
    try:
        child.process.wait()
    except KeyboardInterrupt:
        pass
