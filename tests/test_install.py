"""The Raspberry Pi install script, run into a DESTDIR tree (no pip, systemctl or udevadm)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "systemd" / "install.sh"


def run(destdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "DESTDIR": str(destdir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_installs_every_file_and_appends_config_txt_once(tmp_path: Path) -> None:
    first = run(tmp_path)
    assert first.returncode == 0, first.stderr
    for rel in (
        "etc/systemd/system/emgd.service",
        "usr/lib/sysusers.d/emgd.conf",
        "usr/lib/tmpfiles.d/emgd.conf",
        "etc/udev/rules.d/99-emgd.rules",
        "etc/modules-load.d/emgd.conf",
        "etc/emgd/emgd.toml",
        "opt/emgd/README.md",
    ):
        assert (tmp_path / rel).is_file(), rel
    boot = (tmp_path / "boot/firmware/config.txt").read_text()
    assert "dtparam=spi=on" in boot and boot.count("# >>> emgd") == 1
    # A second run keeps the admin's config and does not append twice.
    (tmp_path / "etc/emgd/emgd.toml").write_text("# mine\n")
    second = run(tmp_path)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "etc/emgd/emgd.toml").read_text() == "# mine\n"
    assert (tmp_path / "boot/firmware/config.txt").read_text().count("# >>> emgd") == 1


def test_board_choice_and_unknown_board(tmp_path: Path) -> None:
    ok = run(tmp_path / "a", EMGD_BOARD="mcp3008")
    assert ok.returncode == 0, ok.stderr
    assert 'backend = "mcp3008"' in (tmp_path / "a/etc/emgd/emgd.toml").read_text()
    bad = run(tmp_path / "b", EMGD_BOARD="nonesuch")
    assert bad.returncode == 1
    assert "unknown board 'nonesuch'" in bad.stderr
