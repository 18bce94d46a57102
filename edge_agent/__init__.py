"""edge-agent: an agent for connected products (Pi gateways and ESP32 boards).

This file is imported on MicroPython too (before edge_agent.core), so it
holds nothing but the version.
"""

__version__ = "0.1.0"
