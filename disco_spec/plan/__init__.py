"""The plan stage: `resolve_plan(spec) -> Plan`, every image/frame with its resolved values and seeds.

May import: spec (and the foundation modules errors, atomic). No torch.
"""
