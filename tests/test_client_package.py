"""The Python client installs on its own: `pip install ./` builds a wheel holding `afmts_client` (and
nothing of the server), which a script outside the repository imports and uses."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def test_the_client_builds_as_a_wheel_and_imports_outside_the_repo(tmp_path):
    source = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info beside the sources
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "afmts_client", source / "afmts_client", ignore=shutil.ignore_patterns("__pycache__"))

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("afmts_client-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"afmts_client"}  # nothing of the server

    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    script = ("import afmts_client, sys; c = afmts_client.AIRegistryClient('http://127.0.0.1:9', api_key='x'); "
              "print(afmts_client.__file__); print('django' in sys.modules)")
    ran = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    where, django_loaded = ran.stdout.split()
    assert where.startswith(str(site)) and django_loaded == "False"
