"""``costwarden demo``: the guardrail demo on an embedded stand-in cluster (see ``runner``)."""
