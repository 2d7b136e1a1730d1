"""The generated JSON Schema of the format, shipped as package data (``record.schema.json``)."""
