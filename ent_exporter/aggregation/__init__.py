"""What the indicators are computed with: incremental event counters (``incremental``), per-day
aggregates of the window collectors (``days``), calendar periods (``periods``), the (structure,
profile) pairs known from the accounts (``known``) and the optional relations of a source
(``optional``)."""
