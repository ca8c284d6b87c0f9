"""The server's routes, one module per concern; ``router.http.server`` includes each router."""
