"""Where the figures come from: the PostgreSQL source the collectors read (``postgres``), the
contract's relations as plain tables (``tables``), the platform adapters that create the contract's
views over Edifice or Moodle, or its tables for the `canonical` platform (``adapters``), and the checks of a source before use
(``preflight``)."""
