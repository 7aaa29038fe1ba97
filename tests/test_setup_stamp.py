"""launch/setup.sh's install stamp (issue #28, finding 4): it records the extra (cpu/gpu) and the hash
of what the venv was installed from; a venv of the other extra is neither reused nor installed over,
and set-up stops saying what to run; a stamp of the previous format (the hash alone) is accepted when
its hash is current and the venv's torch is of the wanted build. Nothing is installed here: the
decision functions run on temporary stamps, and the script itself on a temporary copy of the repo
whose stamps make it stop or restamp before any install."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "launch" / "setup.sh"
LEGACY_BLOB = "c0a0550236302545c9afbbc0abf84c4ef87de5fb"  # the previous setup.sh
# the extra the running interpreter's torch was built for (what the script asks a venv's torch)
THIS_TORCH = "gpu" if __import__("torch").version.cuda else "cpu"


def _bash(script: str, *args: str, gpu: str | None = None, path: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RLTRAIN_GPU"}
    if gpu is not None:
        env["RLTRAIN_GPU"] = gpu
    if path is not None:
        env["PATH"] = path
    out = subprocess.run(["bash", "-c", f'source "{SETUP}"; {script}', "_", *args], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _sha16(*parts: bytes) -> str:
    return hashlib.sha256(b"".join(parts)).hexdigest()[:16]


def _legacy_setup() -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "blob", LEGACY_BLOB], capture_output=True,
                          check=True).stdout


REQ = _sha16((ROOT / "pyproject.toml").read_bytes(), SETUP.read_bytes())
LEGACY = _sha16((ROOT / "pyproject.toml").read_bytes(), _legacy_setup())


def test_wanted_extra(tmp_path):
    assert _bash("wanted_extra", gpu="1") == "gpu"
    assert _bash("wanted_extra", gpu="0") == "cpu"
    fake = tmp_path / "bin"  # a machine with nvidia-smi on its PATH (the command is only looked up)
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    system = os.environ["PATH"]
    assert _bash("wanted_extra", path=f"{fake}:{system}") == "gpu"
    assert _bash("wanted_extra", gpu="0", path=f"{fake}:{system}") == "cpu"  # asked for the CPU on a GPU machine
    assert _bash("wanted_extra") == ("gpu" if shutil.which("nvidia-smi") else "cpu")


def test_hashes(tmp_path):
    assert _bash(f'requirements_hash "{ROOT}"') == REQ
    # the previous script's stamp for this pyproject.toml: sha256(pyproject.toml + that script), as it computed
    assert _bash(f'legacy_hash "{ROOT}"') == LEGACY
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    assert _bash(f'legacy_hash "{tmp_path}"') == "none"  # no git history to read the previous script from


def _decide(stamp: Path, gpu: str, python: str = sys.executable) -> str:
    return _bash('stamp_decision "$1" "$(wanted_extra)" "$2" "$3" "$4"', str(stamp), REQ, LEGACY, python, gpu=gpu)


@pytest.mark.parametrize("gpu,want,other", [("0", "cpu", "gpu"), ("1", "gpu", "cpu")])
def test_decision_on_stamps_of_both_extras(tmp_path, gpu, want, other):
    stamp = tmp_path / "stamp"
    assert _decide(stamp, gpu) == "install"  # no stamp yet
    cases = {f"extra={want} req={REQ}": "ok",
             f"extra={want} req=0123456789abcdef": "stale",  # pyproject.toml or setup.sh changed: same extra again
             f"extra={other} req={REQ}": f"mismatch {other}",  # never reused, never installed over
             f"extra={other} req=0123456789abcdef": f"mismatch {other}",
             "something else": "mismatch unknown"}
    for content, expected in cases.items():
        stamp.write_text(content + "\n")
        assert _decide(stamp, gpu) == expected, content


@pytest.mark.parametrize("gpu", ["0", "1"])
def test_decision_on_previous_format_stamps(tmp_path, gpu):
    """The bare hash of the previous script: the venv's torch tells its extra."""
    want = {"0": "cpu", "1": "gpu"}[gpu]
    stamp = tmp_path / "stamp"
    stamp.write_text(LEGACY + "\n")
    assert _decide(stamp, gpu) == ("rewrite" if want == THIS_TORCH else f"mismatch {THIS_TORCH}")
    stamp.write_text("0123456789abcdef\n")  # installed from another pyproject.toml
    assert _decide(stamp, gpu) == ("stale" if want == THIS_TORCH else f"mismatch {THIS_TORCH}")
    broken = tmp_path / "python"  # a venv whose torch cannot be asked
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    stamp.write_text(LEGACY + "\n")
    assert _decide(stamp, gpu, str(broken)) == "mismatch unknown"


def _repo_copy(tmp_path: Path, stamp: str) -> Path:
    """A repo with this setup.sh and pyproject.toml, the previous script in its git objects, and a .venv
    holding only a stamp and a python that runs this interpreter."""
    repo = tmp_path / "repo"
    (repo / "launch").mkdir(parents=True)
    shutil.copy(SETUP, repo / "launch" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    blob = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=_legacy_setup(),
                          capture_output=True, check=True).stdout.decode().strip()
    assert blob == LEGACY_BLOB
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (repo / ".venv" / "bin" / "python").chmod(0o755)
    (repo / ".venv" / ".rltrain-installed").write_text(stamp + "\n")
    return repo


def _run_setup(repo: Path, gpu: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RLTRAIN_GPU": gpu}
    return subprocess.run(["bash", str(repo / "launch" / "setup.sh")], capture_output=True, text=True, env=env,
                          timeout=60)


def test_setup_stops_on_a_cpu_venv_on_a_gpu_machine(tmp_path):
    repo = _repo_copy(tmp_path, f"extra=cpu req={REQ}")
    out = _run_setup(repo, "1")
    assert out.returncode == 1
    assert "holds the 'cpu' extra but this machine wants 'gpu'" in out.stderr
    assert "rm -rf .venv && make setup" in out.stderr and "RLTRAIN_GPU=0 make setup" in out.stderr
    assert "installing" not in out.stdout
    assert (repo / ".venv" / ".rltrain-installed").read_text() == f"extra=cpu req={REQ}\n"  # left as it was
    out = _run_setup(repo, "0")  # the CPU venv kept deliberately
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def test_setup_restamps_a_current_previous_format_stamp(tmp_path):
    repo = _repo_copy(tmp_path, LEGACY)
    out = _run_setup(repo, {"cpu": "0", "gpu": "1"}[THIS_TORCH])
    assert out.returncode == 0 and "installing" not in out.stdout, out.stderr
    assert (repo / ".venv" / ".rltrain-installed").read_text() == f"extra={THIS_TORCH} req={REQ}\n"
