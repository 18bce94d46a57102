"""The console as a technician types at it on a plain terminal (picocom,
PuTTY): Tab completes commands and the device's names, `?` explains where
the cursor is, unique prefixes run, an incomplete command shows its usage
whatever the session, and Up never recalls a token. On both interpreters."""

from console_support import Screen, bench, token

from edge_agent.core import signals as sg

UP = "\x1b[A"


def test_tab_completes_commands_keywords_and_the_device_s_names():
    _, console = bench()
    screen = Screen(console)
    # Each answer is the echo of what was typed, then what Tab added.
    assert screen.type("quar\t") == "quarantine "
    assert screen.type("f\t") == "force "
    # Two components: Tab lists them, the line stays as typed.
    assert screen.type("\t") == "\ncoolant_loop  fan\nunit-7> quarantine force "
    assert screen.type("f\t") == "fan "
    screen.type("\x03")
    assert screen.type("readings c\t").endswith("readings coolant_temp ")
    screen.type("\x03")
    assert screen.type("help sel\t").endswith("help selftest ")
    screen.type("\x03")
    assert screen.type("  comp\t").endswith("  components ")  # leading blanks are no word


def test_question_mark_lists_commands_or_the_usage_and_what_comes_next():
    _, console = bench()
    screen = Screen(console)
    out = screen.type("co?")
    assert out == ("co?\n  components   component states, since when, and why\n"
                   "  config       the board and agent configuration\nunit-7> co"), out
    screen.type("\x03")
    out = screen.type("quarantine release ?")
    assert out.endswith("quarantine release ?\nusage: quarantine force|release COMPONENT\n  coolant_loop  fan\n"
                        "unit-7> quarantine release "), out
    screen.type("\x03")
    assert "  status       uptime" in screen.type("?")  # on an empty line: every command


def test_unique_prefixes_run_and_ambiguous_ones_say_which():
    _, console = bench()
    screen = Screen(console)
    assert "coolant_loop (essential)  ok" in screen.run("comp")
    assert screen.run("co") == "error: ambiguous command 'co': components or config; type more of it (Tab completes)"
    assert "usage: quarantine force|release COMPONENT" in screen.run("help quar")
    assert screen.run("ec o") == "error: 'o' could be off or on; usage: echo on|off"
    assert screen.run("notices of") == "notices off"


def test_an_incomplete_command_shows_its_usage_before_asking_for_a_login():
    _, console = bench()
    screen = Screen(console)
    assert screen.run("quarantine") == "error: usage: quarantine force|release COMPONENT"
    assert screen.run("quarantine force") == "error: usage: quarantine force|release COMPONENT"
    assert screen.run("ack") == "error: usage: ack ALERT"
    assert screen.run("config") == "error: usage: config show"
    # Complete, it asks for the session it needs.
    assert "needs a technician session" in screen.run("quarantine force fan")
    assert "log in first" in screen.run("config show")


def test_abbreviated_privileged_commands_run_and_are_audited_in_full():
    view, console = bench()
    screen = Screen(console)
    assert screen.run("login " + token()).startswith("logged in as alice")
    assert screen.run("quar f fan").startswith("fan: ok -> forced")
    assert view.audits()[-1].body[sg.U_ACTION] == "quarantine.force"


def test_up_recalls_commands_but_never_a_token():
    _, console = bench()
    screen = Screen(console)
    secret = token()
    screen.run("status")
    screen.run("login " + secret)
    screen.run("lgoin " + secret)  # a typo: unknown command, the token still never kept
    screen.run("whoami")
    assert screen.type(UP) == "whoami"
    screen.type(UP)
    screen.type(UP)
    assert screen.session.line.partial() == "status"
    assert secret not in "".join(screen.session.line.editor.history)
    assert screen.session.line.editor.history == ["status", "whoami"]
