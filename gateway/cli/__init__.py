"""The command line, `o1-gateway`: the top of the stack.

`main` parses arguments, builds a Config and runs uvicorn with the server's protocol (or the
simulator alone); `admin` is an HTTP client of the admin API (`teams`, `keys`, `usage`); `route`
routes JSON lines offline or scores them against labels. May import anything; nothing in the
gateway imports it but `__main__`.
"""
