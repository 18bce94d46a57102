"""The `edge-agent` command line: main.py builds the parser from one module
per command group (run, board, watch, keys, receiver, sim, store, console,
cmd, firmware), each owning its options; common.py holds what they share.
The work itself is in gateway/, receiver/, keys/, tools/ and simulator/."""
