"""The packages of the wheel, which pyproject.toml's static tables cannot
say: edge_agent, and the repository's simulator/ folder under the name
edge_agent_simulator (edge_agent/cli/sim.py explains the two names; the
simulator's modules import each other relatively). Everything else is in
pyproject.toml."""

from setuptools import find_namespace_packages, setup

SIMULATOR = "edge_agent_simulator"


def packages(top):
    # Namespace discovery, so folders of data only (scenario libraries,
    # the unit and config files) are listed as setuptools expects.
    return find_namespace_packages(include=[top, top + ".*"], exclude=["*.__pycache__"])


setup(
    packages=packages("edge_agent") + [SIMULATOR + name[len("simulator"):] for name in packages("simulator")],
    package_dir={SIMULATOR: "simulator"},
)
