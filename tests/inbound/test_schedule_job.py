"""The scheduler's ``inbound`` job: registered on schedule.inbound only when a mailbox is configured, and
one run of it is one pass over the real Dovecot mailbox."""

from __future__ import annotations

from pathlib import Path

from newsletter.models import SUBSCRIBER_UNSUBSCRIBED
from newsletter.schedule import INBOUND_JOB_ID, DigestScheduler, inbound_job

from inbound_support import make_world


def test_the_inbound_job_is_registered_only_with_a_mailbox(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    without = make_world(tmp_path / "a", f"sqlite:///{tmp_path / 'a.db'}", ("ada@example.org",))
    with_box = make_world(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}", ("ada@example.org",),
                          inbound={"host": "imap.example.org"}, schedule={"inbound": "*/5 * * * *",
                                                                          "timezone": "UTC"})
    try:
        plain = DigestScheduler(without.nl)  # type: ignore[arg-type]
        plain.register_jobs()
        assert plain.scheduler.get_job(INBOUND_JOB_ID) is None
        boxed = DigestScheduler(with_box.nl)  # type: ignore[arg-type]
        boxed.register_jobs()
        job = boxed.scheduler.get_job(INBOUND_JOB_ID)
        assert job is not None and "*/5" in str(job.trigger)
    finally:
        without.nl.close()
        with_box.nl.close()


def test_one_run_of_the_job_is_one_pass(tmp_path: Path, dovecot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INBOUND_PASSWORD", dovecot.password)
    world = make_world(tmp_path, f"sqlite:///{tmp_path / 'nl.db'}", ("ada@example.org",),
                       environ={"INBOUND_PASSWORD": dovecot.password}, inbound=dovecot.settings("imap", "tls"))
    ada = world.sent["ada@example.org"]
    token = world.nl.link_maker().for_reader(ada.subscriber_id).unsubscribe.rsplit("=", 1)[1]  # type: ignore[attr-defined]
    world.nl.close()  # type: ignore[attr-defined]
    dovecot.deliver(f"From: ada@example.org\r\nTo: papers+unsubscribe@example.org\r\nSubject: unsubscribe {token}\r\n"
                    "\r\n".encode())
    inbound_job(str(world.config_path))
    assert dovecot.folder_count() == 1  # flagged, not moved
    from newsletter.pipeline import Newsletter

    nl = Newsletter.from_config(world.config_path, environ={"INBOUND_PASSWORD": dovecot.password})
    try:
        assert nl.store.subscriber(ada.email).status == SUBSCRIBER_UNSUBSCRIBED
    finally:
        nl.close()
