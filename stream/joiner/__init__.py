"""The impression/action joiner: event-time join logic (``partition_joiner``) and its faust worker
(``faust_app``, started by ``pepnet worker``). See docs/events.md."""
