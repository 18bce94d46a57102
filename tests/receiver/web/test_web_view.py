"""The fleet web view over HTTP against a real receiver database (SQLite and
PostgreSQL: the ``db_url`` fixture), filled by the real receiver from
sealed signals: pages, sorting and filtering, the chart, escaping, access
(tokens, the login cookie, TLS client certificates), the live feed."""

import json
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from edge_agent.receiver.web import access as acc
from simulator import ROOT
from web_support import (READ_TOKEN, T0, WRITE_TOKEN, demo_fleet, get, now_ms, serving)

pytestmark = pytest.mark.integration


@pytest.fixture
def filled(tmp_path, db_url):
    fleet = demo_fleet(str(tmp_path), db_url)
    yield db_url, fleet
    fleet.close()


def test_every_page_needs_a_token_and_answers_401_without(filled):
    db, _ = filled
    with serving(db) as base:
        for path in ("/", "/alerts", "/device/web-1", "/events"):
            assert get(base + path, token=None)[0] == 401, path
            assert get(base + path, token="not-the-token-at-all")[0] == 401, path
        status, body = get(base + "/", token=None)
        assert 'name="token"' in body  # a browser gets the login form with its 401
        assert get(base + "/static/view.js", token=None)[0] == 200
        assert get(base + "/", token=READ_TOKEN)[0] == 200
        assert get(base + "/", token=WRITE_TOKEN)[0] == 200  # write access reads too


def test_the_login_form_sets_an_httponly_cookie_that_opens_the_pages(filled):
    db, _ = filled
    with serving(db) as base:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        data = ("token=" + READ_TOKEN).encode()
        try:
            opener.open(urllib.request.Request(base + "/login", data=data), timeout=10)
            raise AssertionError("no redirect after login")
        except urllib.error.HTTPError as exc:
            assert exc.code == 303
            cookie = exc.headers["Set-Cookie"]
        assert cookie.startswith(acc.COOKIE + "=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        request = urllib.request.Request(base + "/", headers={"Cookie": cookie.split(";")[0]})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and "web-1" in response.read().decode()
        bad = urllib.request.Request(base + "/login", data=b"token=wrong-token-wrong-token")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=10)
        assert refused.value.code == 401


def _rows(html, table):
    body = html.split('<table id="%s">' % table)[1].split("</table>")[0]
    return re.findall(r'<tr data-device="([^"]+)"', body)


def test_fleet_page_lists_devices_with_model_version_alerts_and_quarantine(filled):
    db, _ = filled
    with serving(db) as base:
        status, html = get(base + "/")
        assert status == 200
        assert _rows(html, "fleet") == ["web-1", "web-2"]
        row = html.split('<tr data-device="web-1">')[1].split("</tr>")[0]
        for text in ("EA-DEMO-1", "edge-agent 0.1.0", "cabinet_fan", ">1<"):
            assert text in row, (text, row)
        # sorted by signals, most first: web-1 sent 7, web-2 3
        assert _rows(get(base + "/?sort=signals&desc=0")[1], "fleet") == ["web-2", "web-1"]
        assert _rows(get(base + "/?sort=signals&desc=1")[1], "fleet") == ["web-1", "web-2"]
        assert _rows(get(base + "/?show=quarantined")[1], "fleet") == ["web-1"]
        assert _rows(get(base + "/?show=alerting")[1], "fleet") == ["web-1"]
        assert _rows(get(base + "/?q=web-2")[1], "fleet") == ["web-2"]
        assert _rows(get(base + "/?sort=no-such-column")[1], "fleet") == ["web-1", "web-2"]


def test_device_page_draws_the_alert_at_its_time_with_limits_states_and_audit(filled):
    db, _ = filled
    with serving(db) as base:
        status, html = get(base + "/device/web-1")
        assert status == 200
        svg = html.split('<svg class="chart"')[1].split("</svg>")[0]
        assert 'data-sensor="coolant_temp"' in svg
        marker = re.search(r'<g class="alert-marker critical" data-time="(\d+)" data-condition="out_of_range"', svg)
        assert marker and int(marker.group(1)) == T0 + 60_000
        assert svg.count('class="limit"') == 2 and "high limit 110" in svg
        assert "120 readings, 120 points drawn" in html  # short windows are drawn whole
        states = html.split('<table id="states">')[1].split("</table>")[0]
        assert "cabinet_fan" in states and "quarantined" in states
        audit = html.split('<table id="audit">')[1].split("</table>")[0]
        assert "alice" in audit and "quarantine.release" in audit and "console" in audit
        assert get(base + "/device/nobody")[0] == 404
        assert get(base + "/device/web-1?window=2y")[0] == 400
        assert get(base + "/device/web-1?window=1h")[0] == 200


def test_device_strings_are_escaped_and_no_inline_script_may_run(filled):
    db, _ = filled
    with serving(db) as base:
        for path in ("/alerts", "/device/web-1"):
            status, html = get(base + path)
            assert status == 200
            assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
        request = urllib.request.Request(base + "/", headers={"Authorization": "Bearer " + READ_TOKEN})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self' only
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_alerts_page_lists_active_first_by_severity(filled):
    db, fleet = filled
    fleet.alert("web-2", T0 + 5_000, severity="warning", sensor="fan_speed", condition="stuck", text="fan stuck")
    fleet.alert("web-2", T0 + 9_000, active=False, severity="warning", sensor="fan_speed", condition="stuck",
                text="fan running again")
    fleet.alert("web-2", T0 + 8_000, severity="warning", sensor="supply_v", condition="out_of_range", text="low")
    with serving(db) as base:
        html = get(base + "/alerts")[1]
        body = html.split('<table id="alerts">')[1].split("</table>")[0]
        rows = re.findall(r'<tr class="(active|cleared)" data-device="([^"]+)" data-seq="(\d+)"', body)
        states = [state for state, _, _ in rows]
        assert states == ["active", "active", "cleared", "cleared"], rows
        assert rows[0][1] == "web-1"  # critical before warning
        assert "no fleet incident" in html


def _post(url, fields, token=None, origin=None):
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    if origin:
        request.add_header("Origin", origin)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_tickets_are_listed_and_only_the_write_token_acknowledges_audited(filled):
    db, fleet = filled
    with serving(db) as base:
        html = get(base + "/alerts")[1]
        rows = re.findall(r'<tr id="ticket-(\d+)" data-ticket="\d+" data-state="(\w+)">(.*?)</tr>', html)
        assert len(rows) == 1 and rows[0][1] == "open" and "web-1" in rows[0][2] and "out_of_range" in rows[0][2]
        ticket = int(rows[0][0])
        assert 'action="/tickets/%d/ack"' % ticket not in html  # read access: no form
        assert 'action="/tickets/%d/ack"' % ticket in get(base + "/alerts", token=WRITE_TOKEN)[1]
        assert 'id="ticket-%d"' % ticket in get(base + "/device/web-1")[1]
        url = base + "/tickets/%d/ack" % ticket
        assert _post(url, {"who": "mallory"})[0] == 401
        assert _post(url, {"who": "mallory"}, READ_TOKEN)[0] == 403
        assert _post(url, {"who": "mallory"}, WRITE_TOKEN, origin="https://evil.example")[0] == 403
        assert _post(url, {"who": " "}, WRITE_TOKEN)[0] == 400
        assert _post(base + "/tickets/999/ack", {"who": "alice"}, WRITE_TOKEN)[0] == 409
        assert _post(url, {"who": "alice", "note": "pump swap booked"}, WRITE_TOKEN, origin=base)[0] == 303
        status, text = _post(url, {"who": "bob"}, WRITE_TOKEN)
        assert status == 409 and "acknowledged" in text and "alice (web view)" in text
        row = fleet.storage.query("SELECT state, acked_by, ack_note FROM tickets WHERE id = ?", (ticket,))[0]
        assert row == ("acknowledged", "alice (web view)", "pump swap booked")
        audit = fleet.storage.query("SELECT who, action, note FROM ticket_audit WHERE ticket = ?", (ticket,))
        assert audit == [("alice (web view)", "acknowledge", "pump swap booked")]
        html = get(base + "/alerts")[1]
        assert "alice (web view) at" in html and "pump swap booked" in html


def test_an_acknowledgement_in_the_view_queues_the_webhooks_of_routes_that_take_it(filled, tmp_path):
    """As `receiver ack --routes` does: the tracker mirroring tickets hears
    of it (queued in the outbox with the acknowledgement; the receiver's
    sender posts it)."""
    import json

    from edge_agent.receiver.routes import load_routes

    db, fleet = filled
    routes_file = tmp_path / "routes.toml"
    routes_file.write_text('[[route]]\nname = "tracker"\nurl = "https://tracker.example/hook"\n'
                           'secret_env = "EA_TEST_WEB_HOOK"\nevent = ["acknowledged"]\n')
    routes = load_routes(str(routes_file), environ={"EA_TEST_WEB_HOOK": "s" * 32})
    [(ticket,)] = fleet.storage.query("SELECT id FROM tickets")
    with serving(db, routes=routes) as base:
        assert _post(base + "/tickets/%d/ack" % ticket, {"who": "alice", "note": "on it"}, WRITE_TOKEN)[0] == 303
    [(route, event, payload)] = fleet.storage.query("SELECT route, event, payload FROM outbox")
    assert (route, event) == ("tracker", "ticket.acknowledged")
    body = json.loads(bytes(payload))
    assert (body["ticket"]["acked_by"], body["ticket"]["ack_note"]) == ("alice (web view)", "on it")


def test_a_new_alert_reaches_the_live_feed_within_two_seconds(filled):
    db, fleet = filled
    with serving(db) as base:
        request = urllib.request.Request(base + "/events", headers={"Authorization": "Bearer " + READ_TOKEN})
        with urllib.request.urlopen(request, timeout=10) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.readline() == b": live\n" and stream.readline() == b"\n"
            stored = fleet.alert("web-2", T0 + 200_000, text="live one", sensor="fan_speed")
            stored_ms = now_ms()
            lines = []
            while not lines or lines[-1] != b"\n":
                lines.append(stream.readline())
            arrived_ms = now_ms()
        event = [line for line in lines if line.startswith(b"data: ")]
        assert b"event: alert\n" in lines and len(event) == 1, lines
        alert = json.loads(event[0][6:])
        assert (alert["device"], alert["seq"], alert["text"]) == ("web-2", stored.seq, "live one")
        assert arrived_ms - stored_ms < 2000


def test_a_client_certificate_from_the_view_ca_reads_without_a_token(filled, pki):
    db, _ = filled
    server = acc.server_context(pki.broker_cert, pki.broker_key, client_ca=pki.ca_cert)
    cert, key = pki.client("web-operator-alice")
    with serving(db, access=acc.Access(client_ca=True), ssl_context=server) as base:
        with_cert = ssl.create_default_context(cafile=pki.ca_cert)
        with_cert.load_cert_chain(cert, key)
        assert get(base + "/", token=None, context=with_cert)[0] == 200
        without = ssl.create_default_context(cafile=pki.ca_cert)
        assert get(base + "/", token=None, context=without)[0] == 401


def test_access_refuses_no_credential_short_tokens_and_one_token_for_both(tmp_path):
    with pytest.raises(acc.AccessError, match="no default"):
        acc.Access()
    with pytest.raises(acc.AccessError, match="must differ"):
        acc.Access(READ_TOKEN, READ_TOKEN)
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(acc.AccessError, match="fewer than 16.*openssl rand"):
        acc.load_token(str(short), acc.TOKEN_ENV, "--http-token-file")
    with pytest.raises(acc.AccessError, match="cannot read"):
        acc.load_token(str(tmp_path / "none"), acc.TOKEN_ENV, "--http-token-file")


def _web(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edge_agent", "receiver", "web", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env=env)


def test_the_command_refuses_without_a_token_or_off_loopback_in_clear(filled, tmp_path):
    db, _ = filled
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("EA_HTTP")}
    done = _web("--db", db, "--http", "127.0.0.1:1", env=env)
    assert done.returncode == 2 and "no default" in done.stderr and "--http-token-file" in done.stderr
    token = tmp_path / "token"
    token.write_text(READ_TOKEN + "\n")
    token.chmod(0o600)
    done = _web("--db", db, "--http", "0.0.0.0:1", "--http-token-file", str(token), env=env)
    assert done.returncode == 2 and "in clear" in done.stderr and "--http-cert" in done.stderr
    done = _web("--db", db, "--http", "nowhere", "--http-token-file", str(token), env=env)
    assert done.returncode == 2 and "HOST:PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_live_feed_and_the_alerts_page_read_alerts_by_their_index(tmp_path):
    """The feed polls twice a second: on a database of months of telemetry a
    scan of every signal per poll would be the receiver's heaviest query
    (and the alerts page's)."""
    from edge_agent.receiver.storage import Storage
    from edge_agent.receiver.web import queries

    storage = Storage(str(tmp_path / "plan.sqlite"))
    try:
        captured = []
        query = storage.query
        storage.query = lambda sql, params=(): captured.append((sql, params)) or query(sql, params)
        queries.alerts_since(storage, 0, set())
        queries.latest_alert_received_ms(storage)
        queries.alerts(storage)
        for sql, params in captured:
            plan = [row[3] for row in query("EXPLAIN QUERY PLAN " + sql, params)]
            on_signals = [step for step in plan if " signals" in step]
            # SEARCH or SCAN of the partial index (alerts only), never of the table
            assert on_signals and all("USING INDEX signals_alert_arrival" in step for step in on_signals), plan
    finally:
        storage.close()


def test_a_prediction_is_marked_and_its_interval_shaded(filled):
    from edge_agent.core import signals as sg

    db, fleet = filled
    fleet.send("web-2", sg.KIND_ALERT, T0 + 30_000, {
        sg.A_CONDITION: "predicted_failure", sg.A_COMPONENT: "coolant", sg.A_SENSOR: "coolant_temp",
        sg.A_SEVERITY: "warning", sg.A_TEXT: "trending up", sg.A_ACTIVE: True,
        sg.A_PREDICTION: {sg.P_CROSSING: T0 + 90_000, sg.P_EARLIEST: T0 + 60_000, sg.P_LATEST: T0 + 110_000,
                          sg.P_THRESHOLD: 90.0, sg.P_LEVEL: 76.0, sg.P_SLOPE: 0.5}})
    with serving(db) as base:
        html = get(base + "/device/web-2")[1]
        svg = html.split('<svg class="chart"')[1].split("</svg>")[0]
        start, end = int(re.search(r'data-start="(\d+)"', svg).group(1)), int(re.search(r'data-end="(\d+)"', svg).group(1))
        shaded = re.search(r'<rect class="predicted-interval" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
        assert shaded, svg
        x0, width = float(shaded.group(1)), float(shaded.group(2))
        from edge_agent.receiver.web import chart

        def x(ms):
            return chart.LEFT + (min(max(ms, start), end) - start) * chart.WIDTH / (end - start)

        assert abs(x0 - x(T0 + 60_000)) < 0.1 and abs(x0 + width - x(T0 + 110_000)) < 0.2
        assert 'class="predicted-crossing"' in svg and "predicted to reach 90" in svg
        assert 'data-condition="predicted_failure"' in svg
