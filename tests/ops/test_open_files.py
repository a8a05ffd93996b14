"""A serving process raises its soft open-files limit to the hard one (each open stream is
a socket) and warns when the limit is below the streams its queue admits."""
import resource
import subprocess
import sys
from pathlib import Path

from generation.ops.workers import open_files_warning

ROOT = Path(__file__).resolve().parents[2]


def test_the_soft_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from generation.ops.workers import raise_open_files_limit\n"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    env = {"DJANGO_SETTINGS_MODULE": "project.settings", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    returned, in_effect = (int(value) for value in done.stdout.split())
    expected = min(hard, 1 << 20) if hard != resource.RLIM_INFINITY else 1 << 20
    assert returned == in_effect == expected > 256


def test_a_limit_below_the_admitted_streams_is_named():
    assert open_files_warning(65536, streams=1020) is None
    warning = open_files_warning(1024, streams=1020)
    assert "1024" in warning and "1020" in warning and "LimitNOFILE" in warning
