"""The quarterly fallback rehearsal: one self-judging runbook in its own world (``payops rehearse``).

- :mod:`payops.rehearsal.params` — the parameters and the ticket id;
- :mod:`payops.rehearsal.world` — the rehearsal database, channel, alias and archive; the refusals;
- :mod:`payops.rehearsal.steps` — steps 10–40 (kickoff, environment, failed payout, request);
- :mod:`payops.rehearsal.evidence` / :mod:`payops.rehearsal.criteria` — steps 70–90 and the four criteria;
- :mod:`payops.rehearsal.flow` — the whole, with the SOP's own notebooks in the middle;
- :mod:`payops.rehearsal.schedule` — the quarterly slot, its 7-day rule, ICS and cron export;
- :mod:`payops.rehearsal.cli` — ``payops rehearse``.
"""
