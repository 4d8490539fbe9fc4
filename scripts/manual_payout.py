#!/usr/bin/env python3
"""The SOP's documented command, kept working: same flags as ``payops manual-payout``.

    python scripts/manual_payout.py --studio-id … --studio-name … --ledger-payout-id … \
        --incident-id … --amount 875.50 --reserve-after 120.00 --reason "…" \
        --destination-account acct_… --notes "…" --dry-run
"""

from payops.cli import manual_payout_main

if __name__ == "__main__":
    manual_payout_main()
