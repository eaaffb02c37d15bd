"""Real servers for the test suite: PostgreSQL, redis-server, the app itself, and Chromium.

Each is started on a free loopback port and torn down by its fixture. A missing program is a failure with
the command that installs it, never a skip.
"""
