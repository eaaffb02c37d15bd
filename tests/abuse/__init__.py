"""Abuse tests (issue 13): what the worst client sends — many at once, huge, slow, malformed — against the
real server. One module per kind of input; concurrent clients start together behind a barrier."""
