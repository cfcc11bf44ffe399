"""The shipped systemd unit passes `systemd-analyze verify` with no warning at all.

The unit's ExecStart points at /opt/emgd (where `make install` puts the venv); the test
verifies a copy whose ExecStart points at this checkout's `emgd`, which must exist for
verify to pass, and changes nothing else.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "emgd.service"
INSTALLED_EXEC = "/opt/emgd/venv/bin/emgd"


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is needed to verify the unit (Debian package 'systemd')")
    emgd = Path(sys.executable).with_name("emgd")
    assert emgd.exists(), f"{emgd} missing: is the package installed in this venv?"
    unit = tmp_path / "emgd.service"
    unit.write_text(unit_text.replace(INSTALLED_EXEC, str(emgd)))
    return subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert INSTALLED_EXEC in text
    result = verify(text, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("[Service]\n", "[Service]\nNoSuchKey=1\n")
    result = verify(broken, tmp_path)
    assert "NoSuchKey" in result.stderr


def test_unit_has_what_the_daemon_relies_on() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "RuntimeDirectory=emgd",
        "StateDirectory=emgd",
        "ConfigurationDirectory=emgd",
        "LimitMEMLOCK=infinity",
        "RestrictRealtime=no",
        "SupplementaryGroups=spi i2c gpio",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r"^WatchdogSec=\d", text, re.M)
    assert "PrivateDevices=yes" not in text  # it would hide /dev/spidev*, /dev/i2c-*
