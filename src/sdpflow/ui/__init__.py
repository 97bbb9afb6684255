"""``sdpflow ui``: a local, read-only web application over the run database (Starlette, uvicorn, Jinja2).

:mod:`sdpflow.ui.app` makes the application; :func:`sdpflow.ui.server.serve` binds it to the
loopback interface behind a token. Needs the ``[ui]`` extra.
"""
