"""The commands that talk to a running daemon over its Unix socket.

Owns the socket client (:mod:`~emgd.client.status_client`), ``emgd status`` and its live view,
``emgd calibrate`` and the terminal rendering they share. Clients may import the service (for the
wire protocol's names and status fields) and the base modules; the service never imports them.
"""
