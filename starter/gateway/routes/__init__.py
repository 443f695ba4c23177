"""One module per resource: ``orders`` and ``operator`` under ``/v1``, ``ipn``, ``health``."""
