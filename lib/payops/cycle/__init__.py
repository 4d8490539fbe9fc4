"""The automated twice-monthly Stripe Connect payout cycle (see ``payops.cycle.engine``)."""
