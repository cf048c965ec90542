"""The engine: runs collectors on their cadences, keeps their state and serves what they published.

It knows no indicator: a collector declares its families and cadence (``collector``), the runtime
runs it and persists its result (``runtime``, ``state``, ``journal``), the exposition renders it once
per change (``exposition``), the scheduler calls the runtime (``scheduler``), one clock says what
"now" is (``clock``), and the process' memory is tuned in one place (``memory``)."""
