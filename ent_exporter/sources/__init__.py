"""Where the figures come from: the PostgreSQL source the collectors read (``postgres``), the
contract's relations as plain tables (``tables``), the platform adapters that create the contract's
views over Edifice, Moodle or canonical tables (``adapters``), and the checks of a source before use
(``preflight``)."""
