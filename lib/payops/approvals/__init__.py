"""Dual control one person cannot fake: an approver roster and signed approvals.

The contract:

1. **The roster** (``roster.py``) says who may approve as ``ops`` or ``finance`` and who may operate:
   people, their roles and their SSH public keys, each over a window [added, revoked). Nothing is
   ever deleted; every change is a row in the append-only ``roster_events``.
2. **A statement** (``statement.py``) is the exact text an approver signs: the run it was shown for,
   the role, the parameters' sha256 and the human-readable payload, ending with the canonical
   parameters whose sha256 it states. It is rebuilt from the run, never taken on trust.
3. **A signature** is ``ssh-keygen -Y sign -n payops-approval`` over the statement (``sshkeys.py``).
   An approval is recorded only when it verifies with ``ssh-keygen -Y verify`` against an active
   roster key of a person holding that role, for a statement of a run with the same parameters.
4. **Checked where it matters** (``checks.py``, ``golive.py``): the live preflight (before any row
   exists), verify (step 10) and the transfer re-verify every signature against the roster as it
   stood when it was given; ops, finance and the operator are three different people; the
   operator signs the go-live statement of the live run with their own key; test-only roster
   entries never count in live mode; unsigned (legacy) approvals never count.
5. **Provable later** (``evidence.py``): before a run is sealed its folder receives the statements,
   the signatures and an ``allowed_signers`` file of exactly the roster keys they were checked
   against, so ``ssh-keygen -Y verify`` — or ``payops archive verify`` — re-verifies every approval
   from a copy of the folder alone.

This package never imports pandas, papermill or the runner: ``payops approve`` starts fast.
"""

from __future__ import annotations

NAMESPACE = "payops-approval"  # the ssh-keygen -Y namespace of every payops signature
APPROVER_ROLES = ("ops", "finance")
ROLES = ("ops", "finance", "operator")
