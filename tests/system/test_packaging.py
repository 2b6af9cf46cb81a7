"""The distribution works outside the source tree.

A wheel built from the tracked files (what a clean checkout holds), installed
in a fresh virtual environment, runs ``bibbox demo`` from an empty directory
and serves the kiosk: every file read at run time (the demo configuration,
templates, static files) is package data, and every folder installs under
the one ``bibbox`` namespace, so no top-level ``web`` or ``hal`` appears in
site-packages.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.fault_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _clean_checkout(dest: Path) -> Path:
    """Copy exactly the files git tracks (plus new, unignored ones)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = _clean_checkout(tmp_path_factory.mktemp("checkout"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "-w", str(out), str(source)],
                   check=True, timeout=300)
    (found,) = glob.glob(str(out / "bibbox-*.whl"))
    return Path(found)


def test_the_wheel_holds_one_namespace_and_the_run_time_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("bibbox-")}
    assert tops == {"bibbox"}, tops
    for needed in ("bibbox/config/demo.toml", "bibbox/config/demo-48-rs485.toml",
                   "bibbox/web/templates/kiosk.html", "bibbox/web/templates/staff/login.html",
                   "bibbox/web/static/kiosk.js", "bibbox/web/static/i18n/da.json",
                   "bibbox/web/static/i18n/ar.json", "bibbox/daemon/cli.py",
                   "bibbox/locker/domain/model.py", "bibbox/library/sip2.py",
                   "bibbox/library/demo_library.json", "bibbox/library/testserver.py"):
        assert needed in names, needed
    assert not any(n.startswith("bibbox/tests") for n in names)


def test_installed_wheel_runs_the_demo_from_an_empty_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                    "--disable-pip-version-check", str(wheel)], check=True, timeout=600)
    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.Popen([str(venv / "bin" / "bibbox"), "demo", "--port", str(port),
                             "--state-dir", "state"], cwd=empty, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        page = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    page = answer.read().decode()
                    break
            except OSError:
                time.sleep(0.1)
        if page is None:
            proc.terminate()
            pytest.fail("the installed demo did not serve the kiosk:\n" + proc.communicate(10)[0])
        assert "kiosk" in page.lower()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/kiosk.js", timeout=2) as js:
            assert js.status == 200
        # the code that ran is the installed copy, not this checkout
        site = subprocess.run([str(venv / "bin" / "python"), "-c",
                               "import bibbox.daemon.cli as c; print(c.__file__)"],
                              cwd=empty, env=env, capture_output=True, text=True, check=True)
        assert str(venv) in site.stdout and str(ROOT) not in site.stdout
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert (empty / "state" / "bibbox.db").exists()
