"""Bibbox: controller for outdoor library pickup lockers."""

import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(r'__version__ = "([^"]+)"',
                    Path(__file__).with_name("locker").joinpath("__init__.py").read_text()).group(1)

setup(
    name="bibbox",
    version=VERSION,
    description="Open-source controller for the outdoor pickup lockers of Danish public libraries",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["locker", "locker.*", "hal", "hal.*", "web", "web.*",
                                    "central", "central.*"]),
    package_data={"web": ["templates/*.html", "templates/staff/*.html", "static/*"],
                  "central": ["*.yaml", "*.json"]},
    include_package_data=True,
    install_requires=[
        "gpiozero>=2.0,<3",
        "pyserial>=3.5,<4",
        "paho-mqtt>=2.0,<3",
        "flask>=3.0,<4",
        "waitress>=3.0,<4",
    ],
    extras_require={
        # The pin factory's library: lgpio on a Pi 5, RPi.GPIO on a Pi 1-4.
        "lgpio": ["lgpio>=0.2"],
        "rpigpio": ["RPi.GPIO>=0.7"],
        "test": ["pytest>=8", "hypothesis>=6", "fake-rpi>=0.7", "jsonschema>=4",
                 "playwright>=1.45", "psutil>=5", "pyyaml>=6"],
    },
    entry_points={"console_scripts": ["bibbox = locker.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Operating System :: POSIX :: Linux"],
)
