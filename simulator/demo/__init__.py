"""`make demo` (python -m simulator.demo): run.py drives the steps,
console.py is the technician-console step."""
