"""The ``phi3v-data`` command line: parses arguments and calls the library, nothing more."""
