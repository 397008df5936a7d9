"""The ``canarywise`` command line: ``plan``, ``test …``, ``bounds`` (statistics, no AWS) and the operator
commands against a deployed or local stack."""
