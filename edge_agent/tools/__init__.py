"""Build-time tools: firmware_build.py compiles board files and device
settings to CBOR, mpy-crosses the ESP32 firmware and makes its ROMFS
image (`edge-agent firmware ...`, `make firmware`)."""
