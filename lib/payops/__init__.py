"""payops — Payments Ops runbooks and Finance reconciliation as parameterized, archived notebooks."""

__version__ = "0.1.0"
