"""The shipped deployment files as a deployer uses them: the nginx site (TLS server
included) passes `nginx -t`, and `check --deploy` is clean under deploy/sluice.env.example
while the embedded default stays plain HTTP."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from deploy.localstack.nginx import DEPLOY, NGINX
from deploy.localstack.sluice import ROOT


def env_file(path) -> dict:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def check_deploy(tmp_path, extra: dict) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "SLUICE_", "DATABASE_URL"))}
    env.update({"DJANGO_SETTINGS_MODULE": "project.settings", "SLUICE_DATA_DIR": str(tmp_path),
                "SLUICE_PRELOAD_MODEL": "false", **extra})
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def test_check_deploy_is_clean_under_the_documented_production_environment(tmp_path):
    production = env_file(DEPLOY / "sluice.env.example")
    production["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    production.pop("DATABASE_URL")  # names a server that is not here; check --deploy needs no connection
    assert "no issues" in check_deploy(tmp_path, production)
    embedded = check_deploy(tmp_path, {})
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in embedded  # plain HTTP on loopback: the secure switches stay off by default


@pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="nginx is not installed (`make test` installs it)")
def test_shipped_nginx_site_passes_nginx_t(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    site = (DEPLOY / "nginx" / "sluice.conf").read_text()
    site = site.replace("/etc/nginx/sluice/", f"{DEPLOY}/nginx/")
    site = site.replace("/etc/letsencrypt/live/sluice.example.com/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/sluice.example.com/privkey.pem", str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    done = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                           "-e", str(tmp_path / "error.log")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
