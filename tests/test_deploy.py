"""The deployment files in deploy/: the systemd unit verifies and starts what the README says, and nginx with
the shipped site config passes `nginx -t` and really proxies to `newsletter serve` (all on 127.0.0.1)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from newsletter.cli import main

from support import ROOT, write_config

UNIT = ROOT / "deploy" / "newsletter.service"
SITE = ROOT / "deploy" / "nginx-newsletter.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def newsletter_script() -> str:
    script = Path(sys.executable).parent / "newsletter"
    return str(script) if script.exists() else shutil.which("newsletter") or pytest.fail("no newsletter script")


def exec_start() -> list[str]:
    [line] = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_the_systemd_unit_verifies_and_its_command_is_one_the_cli_takes(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian's systemd package has it)")
    argv = exec_start()
    assert argv[0].endswith("/bin/newsletter") and argv[1] == "serve"
    # The options are ones `newsletter serve` takes (parsed by the CLI itself, nothing run).
    known = {opt for param in main.commands["serve"].params for opt in param.opts}
    given = dict(zip(argv[2::2], argv[3::2]))
    assert set(given) <= known, set(given) - known
    assert (given["--host"], given["--port"]) == ("127.0.0.1", "8000")  # never exposed past the proxy
    assert given["--config"].startswith("/srv/newsletter/")
    # systemd-analyze checks the executable exists: point it at this environment's script.
    unit = tmp_path / "newsletter.service"
    unit.write_text(UNIT.read_text().replace(argv[0], newsletter_script()))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    broken = tmp_path / "broken.service"  # and verify does catch a mistake in such a unit
    broken.write_text(unit.read_text().replace("Type=exec", "Type=sometimes"))
    check = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "service type" in check.stderr  # so the clean stderr above means something


def self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={host}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def wait_for(port: int, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


@pytest.fixture
def app_port(tmp_path: Path) -> Iterator[int]:
    """`newsletter serve` as the unit starts it (pages only), for https://papers.example.org."""
    port = free_port()
    cfg = write_config(tmp_path, site_url="https://papers.example.org")
    env = {**os.environ, "NEWSLETTER_SIGNING_KEY": "k" * 40, "NEWSLETTER_ENV": "production"}
    proc = subprocess.Popen([newsletter_script(), "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port",
                             str(port), "--no-scheduler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_nginx_with_the_shipped_site_passes_its_check_and_proxies_to_the_app(tmp_path: Path, app_port: int) -> None:
    nginx = shutil.which("nginx") or (Path("/usr/sbin/nginx") if Path("/usr/sbin/nginx").exists() else None)
    if not nginx:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    cert, key = self_signed(tmp_path, "papers.example.org")
    http_port, https_port = free_port(), free_port()
    site = SITE.read_text()
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)  # the test host may have no IPv6
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = re.sub(r"listen 443 (ssl[^;]*);", rf"listen 127.0.0.1:{https_port} \1;", site)
    site = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", site)
    site = site.replace("proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{app_port};")
    (tmp_path / "site.conf").write_text(site)
    temp = tmp_path / "temp"
    temp.mkdir()
    (tmp_path / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    args = [str(nginx), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "test is successful" in check.stderr, check.stderr
    proc = subprocess.Popen([*args, "-g", "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(https_port)
        with httpx.Client(verify=False, timeout=30) as client:
            plain = client.get(f"http://127.0.0.1:{http_port}/editions/", headers={"Host": "papers.example.org"})
            assert plain.status_code == 301
            assert plain.headers["location"] == "https://papers.example.org/editions/"
            page = client.get(f"https://127.0.0.1:{https_port}/", headers={"Host": "papers.example.org"})
            assert page.status_code == 200 and "<form" in page.text  # the subscribe page, through the proxy
            big = client.post(f"https://127.0.0.1:{https_port}/api/subscriptions", content=b"x" * 200_000,
                              headers={"Host": "papers.example.org", "Content-Type": "application/json"})
            assert big.status_code == 413  # client_max_body_size, before the app reads a byte
    finally:
        proc.terminate()
        proc.wait(timeout=30)
