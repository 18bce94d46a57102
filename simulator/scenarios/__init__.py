"""Scenarios: the library of scenario files (*.toml here, fleet files in
fleet/) and the code that loads, runs, checks and reports them.

- spec.py: the scenario file format, validated with file, key and fix;
- virtual.py: a run on a virtual clock through the real pipeline;
  reading_loop.py its innermost loop (sensor models into the Device);
- live/: a run on real time with real processes and real faults;
- expect.py: the checker, judging a run against its expectations;
- report.py: console lines, JUnit XML, PNG reports;
- suite.py: `edge-agent sim run`, many files, virtual or live;
- health.py: health scenarios generated in code (tests, benchmark).
"""
