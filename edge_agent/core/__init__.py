"""The portable core: every decision the device makes, with no I/O.

Runs unchanged on CPython and MicroPython. Rules for code in this package:
no clock reads (time comes in as integer ms), no files, sockets or sleeps,
and no modules MicroPython lacks (dataclasses, typing, abc, enum, logging,
functools, itertools, ...). tests/mp_run.py imports every module here on
the MicroPython unix port and fails the build if one does not import.
"""
