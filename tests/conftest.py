import pytest  # noqa: F401

# One Playwright/Chromium per test process, shared by every browser test module.
pytest_plugins = ["tests.browser"]
