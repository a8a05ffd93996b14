"""nginx for the stack: Debian's binary, not daemonized, with its own prefix and config in the
stack's directory. The site's locations are deploy/nginx/sluice-locations.conf as shipped
(its static path replaced by the stack's STATIC_ROOT); extra server blocks let tests put
other proxy settings in front of the same processes."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from .children import StackError, free_port, port_answers, spawn, stop, wait_for

DEPLOY = Path(__file__).resolve().parents[1]
SHIPPED_STATIC_ROOT = "/srv/sluice/var/staticfiles/"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# Test fronts: nginx's defaults (response buffering on) in front of the same upstream, with
# the settings that make buffering bite (gzip of event streams) and a chosen read timeout.
BARE_FRONT = """
    location / {{
        proxy_pass http://sluice;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Connection "";
        proxy_read_timeout {read_timeout};
        {extra}
    }}
"""


class Nginx:
    def __init__(self, directory: Path, *, upstream_ports: list[int], static_root: Path,
                 fronts: dict[str, str] | None = None, worker_connections: int = 4096) -> None:
        """`fronts`: name -> server-block body for extra listeners (see front_bare)."""
        if not os.access(NGINX, os.X_OK):
            raise StackError("nginx is not installed (Debian: apt-get install nginx-light; `make stack` does it).")
        self.directory = directory
        self.port = free_port()
        self.fronts = {name: (free_port(), body) for name, body in (fronts or {}).items()}
        self.upstream_ports = upstream_ports
        self.static_root = static_root
        self.worker_connections = worker_connections
        self.log_path = directory / "error.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def front_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.fronts[name][0]}"

    def write_config(self) -> Path:
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "temp" / name).mkdir(parents=True, exist_ok=True)
        locations = (DEPLOY / "nginx" / "sluice-locations.conf").read_text()
        if SHIPPED_STATIC_ROOT not in locations:
            raise StackError(f"sluice-locations.conf no longer aliases {SHIPPED_STATIC_ROOT}")
        locations = locations.replace(SHIPPED_STATIC_ROOT, f"{self.static_root}/")
        (self.directory / "sluice-locations.conf").write_text(locations)
        servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=0;" for port in self.upstream_ports)
        fronts = "\n".join(
            f"  server {{\n    listen 127.0.0.1:{port};\n{body}\n  }}" for port, body in self.fronts.values()
        )
        user = "user www-data;" if os.geteuid() == 0 else ""
        temp = self.directory / "temp"
        config = f"""daemon off;
{user}
worker_processes 1;
worker_rlimit_nofile {self.worker_connections * 2 + 64};
pid {self.directory}/nginx.pid;
error_log {self.log_path} warn;
events {{ worker_connections {self.worker_connections}; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  include {DEPLOY}/nginx/sluice-http.conf;
  access_log {self.directory}/access.log sluice;
  upstream sluice {{
    least_conn;
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    include {self.directory}/sluice-locations.conf;
  }}
{fronts}
}}
"""
        path = self.directory / "nginx.conf"
        path.write_text(config)
        return path

    def test_config(self) -> None:
        config = self.write_config()
        done = subprocess.run([NGINX, "-t", "-q", "-p", str(self.directory), "-c", str(config), "-e", str(self.log_path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(f"nginx -t failed: {done.stderr.strip()}")

    def start(self) -> None:
        self.test_config()
        self.process = spawn(
            [NGINX, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf"), "-e", str(self.log_path)],
            log_path=self.directory / "nginx.out",
        )
        ports = [self.port, *(port for port, _ in self.fronts.values())]
        wait_for(lambda: all(port_answers(port) for port in ports), timeout=20, what="nginx",
                 process=self.process, log_path=self.log_path)

    def stop(self) -> None:
        stop(self.process, sig=signal.SIGQUIT, timeout=5)  # graceful: open connections finish
        self.process = None


def front_bare(*, read_timeout: str = "60s", gzip: bool = False, ignore_accel_buffering: bool = False) -> str:
    """A server-block body with nginx's defaults (response buffering on) in front of Sluice;
    optionally gzip for event streams, and X-Accel-Buffering ignored."""
    extra = []
    if gzip:
        extra.append("gzip on; gzip_types text/event-stream; gzip_min_length 0;")
    if ignore_accel_buffering:
        extra.append("proxy_ignore_headers X-Accel-Buffering;")
    return BARE_FRONT.format(read_timeout=read_timeout, extra="\n        ".join(extra))
