"""A real Dovecot (IMAP and POP3, STARTTLS and implicit TLS) on 127.0.0.1 with a throwaway maildir and a
passwd-file user, and a throwaway CA for its certificate. Used by the inbound tests' fixtures and by
``bench/bench_inbound.py --imap``; needs Debian's dovecot-imapd and dovecot-pop3d.

Example::

    ca = make_ca(Path(tempfile.mkdtemp()))
    box = start_dovecot(ca)
    try:
        box.deliver(b"Subject: hi\r\n\r\nhello\r\n")
    finally:
        box.stop()
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed, or did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TestCA:
    cert_pem: Path
    key: object
    cert: object
    folder: Path

    def issue(self, name: str, *, hosts: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path, object]:
        """A certificate for ``hosts`` signed by this CA: (cert file, key file, private key)."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(timezone.utc)
        alt = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h) for h in hosts]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.cert.subject)  # type: ignore[attr-defined]
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .sign(self.key, hashes.SHA256()))  # type: ignore[arg-type]
        cert_file, key_file = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file, key


def make_ca(folder: Path) -> TestCA:
    """A throwaway certificate authority in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsletter test CA")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = folder / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TestCA(pem, key, cert, folder)


@dataclass
class Dovecot:
    """A running Dovecot: ports, the user, and the user's maildir (to drop messages into)."""

    root: Path
    user: str
    password: str
    imap: int
    imaps: int
    pop3: int
    pop3s: int
    ca_file: Path
    maildir: Path
    uid: int
    gid: int

    def deliver(self, raw: bytes, folder: str | None = None) -> Path:
        """Put a message into the maildir's new/ (as an MTA's local delivery would)."""
        base = self.maildir if folder is None else self.maildir / f".{folder}"
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        name = f"{time.time():.6f}.{uuid.uuid4().hex}.test"
        tmp = base / "tmp" / name
        tmp.write_bytes(raw)
        dest = base / "new" / name
        os.replace(tmp, dest)
        os.chown(dest, self.uid, self.gid)
        for p in (base, base / "new", base / "cur", base / "tmp"):
            os.chown(p, self.uid, self.gid)
        return dest

    def folder_count(self, folder: str | None = None) -> int:
        base = self.maildir if folder is None else self.maildir / f".{folder}"
        return sum(1 for sub in ("new", "cur") if (base / sub).is_dir() for _ in (base / sub).iterdir())

    def settings(self, protocol: str = "imap", security: str = "starttls", **extra: object) -> dict[str, object]:
        port = {("imap", "tls"): self.imaps, ("imap", "starttls"): self.imap, ("imap", "none"): self.imap,
                ("pop3", "tls"): self.pop3s, ("pop3", "starttls"): self.pop3, ("pop3", "none"): self.pop3}
        return {"protocol": protocol, "host": "127.0.0.1", "port": port[(protocol, security)],
                "security": security, "username": self.user, "password": "${INBOUND_PASSWORD}",
                "ca_file": str(self.ca_file), "timeout": 10, **extra}

    def stop(self) -> None:
        """SIGTERM to the master process, wait for it, remove the folder."""
        pid_file = self.root / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:  # still there after 15 s (a loaded machine): its process group (it is a session leader)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)


def _dovecot_binary() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if not found:
        raise DovecotUnavailable("Dovecot is missing: apt-get install -y dovecot-imapd dovecot-pop3d (.ci/run does this)")
    return found


def start_dovecot(test_ca: TestCA) -> Dovecot:
    """A private Dovecot on 127.0.0.1 with its own base_dir, config and a passwd-file user. Call ``stop()``."""
    binary = _dovecot_binary()
    # Not under tmp_path: pytest makes its folders 0700, and Dovecot's unprivileged processes (auth as
    # "dovecot", mail as "nobody") must reach the passwd file and the maildir. Removed at the end.
    root = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    os.chmod(root, 0o755)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(parents=True)
    cert, key, _ = test_ca.issue("imap", hosts=("127.0.0.1", "localhost"))
    if os.geteuid() == 0:  # Dovecot refuses to give mail access to root: the mail user is nobody
        pw = pwd.getpwnam("nobody")
        uid, gid = pw.pw_uid, pw.pw_gid
        login_user, internal_user = "dovenull", "dovecot"
    else:
        uid, gid = os.getuid(), os.getgid()
        login_user = internal_user = pwd.getpwuid(uid).pw_name
    for p in (root / "mail", root / "home"):
        os.chmod(p, 0o755)
    os.chown(root / "mail", uid, gid)
    os.chown(root / "home", uid, gid)
    user, password = "bounces", "s3cret-" + uuid.uuid4().hex[:8]
    (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}::::::\n")
    ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
    conf = root / "dovecot.conf"
    conf.write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = newsletter-test-{uuid.uuid4().hex[:6]}
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {min(uid, 1)}
first_valid_gid = 0
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
pop3_uidl_format = %g
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {ports['imap']}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ports['imaps']}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {ports['pop3']}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {ports['pop3s']}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
""")
    # Dovecot forks into the background: its output goes to a file, so no pipe keeps this call waiting.
    with open(root / "start.log", "wb") as out:
        started = subprocess.run([binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 timeout=30)
    if started.returncode != 0:
        log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
        raise DovecotUnavailable(f"Dovecot did not start: {(root / 'start.log').read_text()}{log}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", ports["imap"]), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        raise DovecotUnavailable("Dovecot did not open its IMAP port: " + (root / "dovecot.log").read_text())
    maildir = root / "mail" / user
    box = Dovecot(root, user, password, ports["imap"], ports["imaps"], ports["pop3"], ports["pop3s"],
                  test_ca.cert_pem, maildir, uid, gid)
    return box
