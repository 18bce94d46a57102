"""`make demo`'s last step (simulator/demo/web.py): the view over a
receiver database, checked and its URL and token file handed back."""

import pytest

from simulator.demo import web as demo_web
from web_support import demo_fleet, get

pytestmark = pytest.mark.integration


def test_the_demo_serves_the_view_of_its_run_with_a_fresh_token(tmp_path):
    db = str(tmp_path / "receiver.sqlite")
    demo_fleet(str(tmp_path), db).close()
    child, url, token_file = demo_web.start(db, str(tmp_path / "work"), "web-1")
    try:
        token = open(token_file).read().strip()
        assert len(token) == 64 and (tmp_path / "work" / "web-token").stat().st_mode & 0o077 == 0
        assert get(url, token=None)[0] == 401
        status, page = get(url, token=token)
        assert status == 200 and 'data-device="web-2"' in page
    finally:
        child.stop()
    with pytest.raises(RuntimeError, match="does not list nobody"):
        demo_web.start(db, str(tmp_path / "work2"), "nobody")
