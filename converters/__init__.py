"""Built-in converters, installed as ``phi3v_data.converters`` (never as a bare ``converters``)."""
