"""Fixtures of the dataset tests."""

import pytest


@pytest.fixture
def write_file():
    """write_file(root, relative, text) -> the path of a UTF-8 file written there, folders made as needed."""
    def write(root, relative, text):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path
    return write
