"""The reference receiver: subscribe, verify, dedupe, detect gaps, store.
See docs/receiver.md."""
