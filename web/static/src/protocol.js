// The room channel's names, mirrored from signaling/protocol.py (tests/test_protocol.py keeps them equal).
export const SUBPROTOCOL = "tsunagu.v1";

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  POLICY_VIOLATION: 1008,
  UNSUPPORTED_PROTOCOL: 4000,
  NOT_ALLOWED: 4003,
  READ_ONLY: 4005,
  ROOM_NOT_FOUND: 4004,
  REPLACED: 4009,
  ROOM_ENDED: 4010,
  LEFT: 4011,
  REJOIN_EXPIRED: 4013,
  UNAVAILABLE: 4503,
});

export const Presence = Object.freeze({
  ABSENT: "absent",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  LEFT: "left",
});

// Close codes after which reconnecting is pointless.
export const FINAL_CLOSES = new Set([
  CloseCode.UNSUPPORTED_PROTOCOL, CloseCode.NOT_ALLOWED, CloseCode.READ_ONLY, CloseCode.ROOM_NOT_FOUND, CloseCode.REPLACED,
  CloseCode.ROOM_ENDED, CloseCode.LEFT, CloseCode.REJOIN_EXPIRED,
]);
