"""Checkout incidents: the on-call runbook for Stripe checkout, as archived notebooks (``payops incident``).

Four scenarios — checkout failures, payment windows not expiring, the retry backlog, receipts — each measured from
the systems themselves (Stripe, the webhook receiver's records, Redis, RabbitMQ, S3), acted on only as its dry run
listed, verified by the runbook's five steps and closed with a sealed summary. Modules, core first:

- ``params`` (the notebooks' contract), ``measure`` (the numbers, pure), ``escalation`` (levels and drafts);
- adapters: ``stripe_pull`` (the shared parallel pager), ``redis_windows``, ``queues`` (RabbitMQ; the SQS seam),
  ``receipts`` (S3), ``services`` (naming an unreachable system);
- the steps: ``scenarios`` + ``triage`` (step 10), ``actions`` (step 20), ``verify``, ``summary`` (close);
- ``store`` (the ``incidents`` table), ``runbook`` (runs and the notebooks' context), ``cli``;
- ``world`` and ``demo``: the systems with planted symptoms, for ``make incident-demo``, tests and the benchmark.
"""
