"""The spec stage: job-spec models (the single source of truth for the schema and the docs), loading
with field-path errors, the prompt / key-frame / cut-schedule grammars, the JSON Schema and DD import.

May import: nothing of disco-spec but the foundation modules (errors). Never torch.
"""
