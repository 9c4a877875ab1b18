"""Migration 0007_taxonomy on SQLite and PostgreSQL: readers of every old topic follow every topic now."""

from __future__ import annotations

from alembic import command

from newsletter.store import Store

OLD = ["llm-inference", "quantization", "training", "hardware", "architectures", "video-generation",
       "image-generation", "3d", "vision", "multimodal", "audio"]


def test_readers_of_all_old_topics_get_every_topic_and_the_others_keep_theirs(store: Store) -> None:
    with store._connect() as conn, conn.begin():
        command.downgrade(store._alembic_config(conn), "0006_inbound")
    assert store.current_revision() == "0006_inbound"
    store.add_subscriber("all@example.org", topics=OLD)
    store.add_subscriber("all-and-other@example.org", topics=[*OLD, "other"])
    store.add_subscriber("some@example.org", topics=["3d", "audio"])
    store.add_subscriber("none@example.org")
    assert tuple(store.subscriber("all@example.org").topics) == tuple(OLD)
    assert store.upgrade()[1] == store.head_revision()
    topics = {s.email: s.topics for s in store.subscribers()}
    assert not topics["all@example.org"] and not topics["all-and-other@example.org"]  # every topic
    assert tuple(topics["some@example.org"]) == ("3d", "audio")
    assert not topics["none@example.org"]
