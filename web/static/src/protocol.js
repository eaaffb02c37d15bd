// The room channel's names, mirrored from signaling/protocol.py (tests/test_protocol.py keeps them equal).
export const SUBPROTOCOL = "tsunagu.v1";

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  POLICY_VIOLATION: 1008,
  UNSUPPORTED_PROTOCOL: 4000,
  NOT_ALLOWED: 4003,
  ROOM_NOT_FOUND: 4004,
  REPLACED: 4009,
  ROOM_ENDED: 4010,
  LEFT: 4011,
  REJOIN_EXPIRED: 4013,
  TOO_MANY_SOCKETS: 4029,
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
  CloseCode.UNSUPPORTED_PROTOCOL, CloseCode.NOT_ALLOWED, CloseCode.ROOM_NOT_FOUND, CloseCode.REPLACED,
  CloseCode.ROOM_ENDED, CloseCode.LEFT, CloseCode.REJOIN_EXPIRED,
]);

// The code of an "error" frame: why the server refused the last frame.
export const ErrorCode = Object.freeze({
  BAD_MESSAGE: "bad_message",
  NOT_ALLOWED: "not_allowed",
  RATE_LIMITED: "rate_limited",
  MEMO_FULL: "memo_full",
  MEDIA_UNAVAILABLE: "media_unavailable",
  MEDIA_FAILED: "media_failed",
});
