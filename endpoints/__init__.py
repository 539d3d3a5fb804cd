"""Trial endpoint analyses: PFS, OS, duration of response and local failure.

Part of the imperative shell. Subject-level time-to-event records come from cases and
engine results (:mod:`endpoints.derive`); the survival statistics (Kaplan–Meier,
log-rank, Cox, Aalen–Johansen) are lifelines' (:mod:`endpoints.analysis`), never written
by hand.
"""
