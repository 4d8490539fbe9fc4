"""Payments monitoring: alert rules over payops' own data, paged and posted through PagerDuty, Slack, Jira and
email; the four dashboards; Prometheus metrics; the credential inventory.

- :mod:`payops.monitor.facts` — the one adapter: a :class:`~payops.monitor.facts.Snapshot` of the database;
- :mod:`payops.monitor.rules` — the five rules, pure functions of a snapshot and the
  :class:`~payops.monitor.thresholds.Thresholds`;
- :mod:`payops.monitor.store` — alert episodes and the outbox of deliveries; :mod:`payops.monitor.dispatch` and
  :mod:`payops.monitor.channels` send them; :mod:`payops.monitor.messages` says what each channel receives;
- :mod:`payops.monitor.check` — ``payops monitor check``; :mod:`payops.monitor.credentials` — the inventory;
- :mod:`payops.monitor.dashboard` (figures), :mod:`payops.monitor.dashboard_run` (the notebook through the
  runner), :mod:`payops.monitor.metrics` (Prometheus), :mod:`payops.monitor.demo_seed` (the demo's history).
"""
