"""Operator tools: code that runs from a command line, never on a request.

:mod:`~index.ops.commands` registers every command; :mod:`~index.ops.cli` holds the account and
repository commands, :mod:`~index.ops.backup` backup and restore, :mod:`~index.ops.selfcheck` the
client-side check of a deployment, :mod:`~index.ops.certs` a self-signed certificate and
:mod:`~index.ops.serving` ``serve`` (granian, through :mod:`~index.ops.wsgi_on_rsgi`; which
requests skip the request threads: :mod:`~index.ops.quick_requests`), :mod:`~index.ops.preflight`
the checks made before a server starts, :mod:`~index.ops.gc` garbage collection and :mod:`~index.ops.repository_summary`
what ``repositories list``/``show`` print.
"""
