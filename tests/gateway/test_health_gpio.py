"""GPIO adapters: the gpiod (libgpiod v2) backend is import-checked and
fails clearly without a chip (the development and CI machines have none:
docs/dependencies.md, gpiod); the simulated backend is what the
scenarios drive."""

import glob
import sys

import pytest

from edge_agent.gateway import gpio
from edge_agent.core import board_health as bh
from edge_agent.core.outputs import SetOutput
from edge_agent.gateway.gpio import SimulatedGpio

OUTPUTS = {
    "fan_power": bh.Output("fan_power", "/dev/gpiochip0", 17, False),
    "dosing_power": bh.Output("dosing_power", "/dev/gpiochip0", 22, True),
}


def _set(output, on):
    o = OUTPUTS[output]
    return SetOutput(output, on, o.chip, o.line, o.active_low, "test", 5)


def test_gpiod_binding_imports_and_has_the_v2_api():
    gpiod = pytest.importorskip("gpiod")
    assert int(gpiod.__version__.split(".")[0]) >= 2
    from gpiod.line import Direction, Value

    assert Direction.OUTPUT and Value.ACTIVE and callable(gpiod.request_lines)


@pytest.mark.skipif(glob.glob("/dev/gpiochip*") != [], reason="this machine has a GPIO chip")
def test_gpiod_backend_without_a_chip_says_why_and_what_to_do():
    pytest.importorskip("gpiod")
    with pytest.raises(gpio.GpioError) as err:
        gpio.GpiodOutputs(OUTPUTS)
    text = str(err.value)
    assert "no GPIO chip at /dev/gpiochip0 (present: none)" in text
    assert "CONFIG_GPIOLIB" in text and "'gpio' group" in text and "simulator" in text


def test_missing_gpiod_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod now raises ImportError
    with pytest.raises(gpio.GpioError) as err:
        gpio.GpiodOutputs(OUTPUTS)
    assert "pip install 'gpiod>=2.1'" in str(err.value)


def test_chip_check_names_every_missing_chip():
    outputs = dict(OUTPUTS)
    outputs["x"] = bh.Output("x", "/dev/gpiochip9", 1, False)
    with pytest.raises(gpio.GpioError) as err:
        gpio.check_chips(outputs, exists=lambda path: path == "/dev/gpiochip0")
    assert "no GPIO chip at /dev/gpiochip9 " in str(err.value)
    gpio.check_chips(OUTPUTS, exists=lambda path: True)


def test_simulated_gpio_keeps_levels_and_history():
    sim = SimulatedGpio(OUTPUTS)
    assert sim.is_on("fan_power") and sim.level("fan_power") == 1
    assert sim.is_on("dosing_power") and sim.level("dosing_power") == 0  # active low: on is a low pin
    sim.apply(_set("fan_power", False))
    sim.apply(_set("dosing_power", False))
    assert sim.level("fan_power") == 0 and sim.level("dosing_power") == 1
    assert sim.history == [(5, "fan_power", False, 0), (5, "dosing_power", False, 1)]
    assert "fan_power (/dev/gpiochip0 line 17) OFF" in sim.describe()
    with pytest.raises(KeyError):
        sim.apply(SetOutput("heater", False, "c", 1, False, "x", 1))
