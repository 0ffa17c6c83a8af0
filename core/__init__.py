"""The bottom layer: what every app may use and that imports nothing of ours.

errors (the one application error type and the error body), audit (the audit recorder),
plans (the plan catalogue) and timestamps (the guide's timestamp format).
"""
