"""The edge gateway: a home hub or bedside box that analyses its patient's readings
with the server's own code, alarms locally, and uploads by policy. docs/edge.md."""
