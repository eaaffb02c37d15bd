"""Getting two people into one room and keeping them in step.

Owns connect numbers, join links, SMS gateways, rooms and their state machine, the room channel protocol
(memo sync, document paging, file transfer, presence, end) and the broker between nodes. Room logic is
sans-I/O: a room is fed events and returns effects; sockets and Redis sit at the edges. Must not import
``web``.
"""
