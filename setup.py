"""The design card's entry.  Metadata lives in ``pyproject.toml``; this shim
only maps the project's folders onto one import namespace, ``bibbox``:
``locker/`` is ``bibbox.locker``, ``web/`` is ``bibbox.web``, and so on, so
the folders stay where the design card puts them and no top-level import
name (``web``, ``hal``) clashes with another distribution."""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
FOLDERS = ("daemon", "locker", "hal", "web", "central", "library", "config")
DATA_FOLDERS = ()


def packages():
    found, dirs = [], {}
    for folder in FOLDERS:
        for init in sorted((HERE / folder).glob("**/__init__.py")):
            rel = init.parent.relative_to(HERE)
            name = "bibbox." + ".".join(rel.parts)
            found.append(name)
            dirs[name] = str(rel)
    for folder in DATA_FOLDERS:
        found.append("bibbox." + folder)
        dirs["bibbox." + folder] = folder
    return found, dirs


PACKAGES, PACKAGE_DIR = packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
