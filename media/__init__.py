"""Video between browsers and the server.

Owns aiortc peer connections, the encoded-passthrough relay with keyframe (PLI/FIR) forwarding, screen
share tracks and ICE/TURN settings. Knows nothing of the web, rooms or the database: it is handed plain
settings and tracks.
"""

from media.forward import Counters
from media.rooms import MediaRooms
from media.settings import MediaSettings, ice_servers

__all__ = ["Counters", "MediaRooms", "MediaSettings", "ice_servers"]
