"""Run the core test suite on the MicroPython unix port (the ESP32 stand-in).

    MICROPYPATH=.:tests/core:.frozen micropython tests/mp_run.py

MicroPython has no pytest, so this is the smallest runner that does the same
job for plain-assert test files: import every module of edge_agent/core (a
module that imports something MicroPython lacks fails here even if no test
uses it), then run every ``test_*`` function of every tests/core/test_*.py
file, and print a pytest-style summary. Exit status 1 if anything failed.
"""

import gc
import os
import sys

CORE_DIR = "edge_agent/core"
TEST_DIR = "tests/core"


def _modules(directory, prefix):
    names = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py") and name.startswith(prefix):
            names.append(name[:-3])
    return names


def _describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def main(argv):
    verbose = "-v" in argv
    selected = [a for a in argv if not a.startswith("-")]
    passed = 0
    tests_run = 0
    failures = []

    for module in _modules(CORE_DIR, ""):
        dotted = "edge_agent.core" if module == "__init__" else "edge_agent.core." + module
        try:
            __import__(dotted)
            passed += 1
            if verbose:
                print("import %s ok" % dotted)
        except Exception as exc:  # report every import failure, keep going
            failures.append(("import " + dotted, exc))

    for module_name in _modules(TEST_DIR, "test_"):
        if selected and module_name not in selected:
            continue
        try:
            module = __import__(module_name)
        except Exception as exc:
            failures.append(("import " + module_name, exc))
            continue
        for name in sorted(dir(module)):
            if not name.startswith("test_"):
                continue
            test = getattr(module, name)
            label = "%s.py::%s" % (module_name, name)
            tests_run += 1
            try:
                test()
                passed += 1
                if verbose:
                    print(label, "PASSED")
            except Exception as exc:
                failures.append((label, exc))
                if verbose:
                    print(label, "FAILED")
            gc.collect()

    for label, exc in failures:
        print("FAILED %s - %s" % (label, _describe(exc)))
        if "-tb" in argv:
            sys.print_exception(exc)
    impl = sys.implementation
    print(
        "micropython %d.%d.%d core: %d passed, %d failed"
        % (impl.version[0], impl.version[1], impl.version[2], passed, len(failures))
    )
    if tests_run == 0:
        print("no test ran: expected test_*.py files with test_* functions in %s" % TEST_DIR)
        return 1
    return 1 if failures else 0


sys.exit(main(sys.argv[1:]))
