"""Durable totals: journal on LittleFS, retained-RAM fast state, save policy,
JSON config. See docs/persistence.md."""
