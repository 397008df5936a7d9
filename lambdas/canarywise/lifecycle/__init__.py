"""The release lifecycle: one table of transitions (`table`) and the service's traffic state (`state`).

Pure: no boto3. The registry applies a transition as one conditional write (`Registry.transition`); the
runtime (`canarywise.runtime.lifecycle`) takes a transition, then moves and verifies traffic.
"""
