"""Requests per second of the public pages on one `newsletter serve` worker, measured with wrk.

Sets up a fresh SQLite database in a temporary folder with real editions, made as `newsletter send` makes
them: the bundled sample pages (Mar 14, 2025: 85 papers; Mar 25; Oct 28) sent to a reader of every topic, so
the first edition's page lists every one of its papers. Then starts `newsletter serve --no-scheduler` (uvicorn,
one worker) on 127.0.0.1 in a process of its own, and runs wrk (Debian's `wrk`) against:

- ``edition``: ``/editions/1`` without gzip; ``edition-gzip``: with ``Accept-Encoding: gzip``;
  ``edition-304``: with the page's ETag in ``If-None-Match`` (what a browser or a proxy revalidating sends);
- ``feed.atom`` (gzip), ``archive`` (``/editions``, gzip), and ``subscribe``, a small page that is rendered on
  every request (it carries a CSRF token), for comparison.

For each it prints wrk's requests/s and latency (mean, p50, p99) and the server's CPU time per request (from
/proc: user + system of the server process over the run, so it says what one core does whatever else the
machine runs). Every target runs ``--runs`` times (median and range printed) and `uptime` is printed before
and after, since the machine may be shared. ``--page-cache-mb 0`` turns the page cache off (every request
renders) for a comparison; ``PYTHONPATH=/path/to/older/checkout python bench/bench_web.py`` measures older code
(a checkout from before the cache, say) the same way.

Run: ``python bench/bench_web.py`` (about 2 minutes), ``--duration 10 --runs 3 --connections 8``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402

from newsletter.config import load  # noqa: E402
from newsletter.pipeline import Newsletter  # noqa: E402

SAMPLES = [("mar14", date(2025, 3, 14)), ("mar25", date(2025, 3, 25)), ("oct28", date(2025, 10, 28))]
TICKS = os.sysconf("SC_CLK_TCK")


def make_site(folder: Path, page_cache_mb: float | None) -> tuple[Path, int, int]:
    """config.yaml and a database with the sample editions; returns (config, first edition id, its papers)."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data.update(database_url="sqlite:///newsletter.db", sample_fallback=False, sources=[], messenger="outbox",
                outbox_dir=str(folder / "outbox"))
    if page_cache_mb is not None:  # None: the default (and a checkout from before the setting runs too)
        data["web"] = {**data.get("web", {}), "page_cache_mb": page_cache_mb}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    nl = Newsletter(load(config, {}))
    nl.store.add_subscriber("reader@example.org")  # every topic
    first, count = 0, 0
    for name, day in SAMPLES:
        nl.import_file(ROOT / "newsletter" / "sample" / f"daily-papers-{name}.txt", day)
        report = nl.send("daily", day, fetch=False)
        if not first:
            first = int(report.edition_id)
            count = len(nl.store.edition_papers(first))
    nl.close()
    return config, first, count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NEWSLETTER_SIGNING_KEY": "b" * 64}
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--no-scheduler",
                             "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("newsletter serve did not start")
            time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def ms(text: str) -> float:
    """wrk's 856.00us, 12.34ms, 1.02s, 2.00m in milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, headers: dict[str, str], duration: int, connections: int, pid: int) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    before = cpu_seconds(pid)
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "mean": ms(re.search(r"Latency\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "p50": ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
            "p99": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
            "cpu_us": cpu / max(requests, 1) * 1e6, "requests": requests,
            "bad": int(errors.group(1)) if errors else 0}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per target")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--page-cache-mb", type=float, default=None, help="web.page_cache_mb (0: no cache; "
                        "default: the setting's default)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        config, eid, papers = make_site(folder, args.page_cache_mb)
        port = free_port()
        proc = start(config, port)
        base = f"http://127.0.0.1:{port}"
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{base}/editions/{eid}")) as response:
                etag, size = response.headers["etag"], len(response.read())
            with urllib.request.urlopen(urllib.request.Request(f"{base}/editions/{eid}",
                                                               headers={"accept-encoding": "gzip"})) as response:
                gz_etag, gz_size = response.headers["etag"], len(response.read())
            gz = {"Accept-Encoding": "gzip"}
            targets = [
                ("edition", f"/editions/{eid}", {}),
                ("edition-gzip", f"/editions/{eid}", gz),
                ("edition-304", f"/editions/{eid}", {**gz, "If-None-Match": gz_etag or ""}),
                ("feed.atom", "/feed.atom", gz),
                ("archive", "/editions", gz),
                ("subscribe", "/subscribe", gz),
            ]
            print(f"edition {eid}: {papers} papers, {size} bytes ({gz_size} gzipped), ETag {etag}")
            cache = "default" if args.page_cache_mb is None else args.page_cache_mb
            print(f"newsletter serve (1 worker, pid {proc.pid}), page_cache_mb={cache}; "
                  f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.runs} runs per target")
            print(f"uptime before: {uptime()}")
            for _, path, headers in targets:  # warm up: first renders, imports, connections
                wrk(base + path, headers, 1, args.connections, proc.pid)
            print(f"{'target':<14}{'req/s median':>13}{'  (min-max)':<18}{'mean ms':>8}{'p50 ms':>8}{'p99 ms':>8}"
                  f"{'CPU us/req':>11}{'req/CPU s':>10}")
            for name, path, headers in targets:
                runs = [wrk(base + path, headers, args.duration, args.connections, proc.pid) for _ in range(args.runs)]
                rps = [r["rps"] for r in runs]
                cpu = statistics.median(r["cpu_us"] for r in runs)
                bad = sum(int(r["bad"]) for r in runs)
                print(f"{name:<14}{statistics.median(rps):>13.0f}  ({min(rps):.0f}-{max(rps):.0f}){'':<4}"
                      f"{statistics.median(r['mean'] for r in runs):>8.1f}{statistics.median(r['p50'] for r in runs):>8.1f}"
                      f"{statistics.median(r['p99'] for r in runs):>8.1f}{cpu:>11.0f}{1e6 / cpu if cpu else 0:>10.0f}"
                      + (f"  {bad} non-2xx/3xx!" if bad else ""))
            print(f"uptime after: {uptime()}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
