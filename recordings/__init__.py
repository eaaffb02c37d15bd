"""What a meeting leaves behind.

Owns recorders (encoded packets to WebM per track, no transcoding), the 120-minute recording limit and
meeting records (商談記録): memo snapshots, files, documents shown, events, recordings and exports. Must not
import ``web`` or ``signaling``.
"""
