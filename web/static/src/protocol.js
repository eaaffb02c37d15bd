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
  TOO_MANY_SOCKETS: 4029,
  UNAVAILABLE: 4503,
});

// The largest frame the server reads (signaling/protocol.py MAX_FRAME_BYTES).
export const MAX_FRAME_BYTES = 65536;

// The most pointer positions (doc.pointer) a side sends a second; the room relays no more (POINTER_PER_SECOND).
export const POINTER_PER_SECOND = 20;

export const Presence = Object.freeze({
  ABSENT: "absent",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  LEFT: "left",
});

// What a side's camera is doing (media.state, media.peer), and why there is none when there is none.
export const CameraState = Object.freeze({
  ON: "on",
  OFF: "off",
  PAUSED: "paused",
  DECLINED: "declined",
  BLOCKED: "blocked",
  NONE: "none",
});

// Close codes after which reconnecting is pointless.
export const FINAL_CLOSES = new Set([
  CloseCode.UNSUPPORTED_PROTOCOL, CloseCode.NOT_ALLOWED, CloseCode.READ_ONLY, CloseCode.ROOM_NOT_FOUND,
  CloseCode.REPLACED, CloseCode.ROOM_ENDED, CloseCode.LEFT, CloseCode.REJOIN_EXPIRED,
]);

// The code of an "error" frame: why the server refused the last frame.
export const ErrorCode = Object.freeze({
  BAD_MESSAGE: "bad_message",
  NOT_ALLOWED: "not_allowed",
  RATE_LIMITED: "rate_limited",
  MEMO_FULL: "memo_full",
  MEDIA_UNAVAILABLE: "media_unavailable",
  MEDIA_FAILED: "media_failed",
  UNAVAILABLE: "unavailable",
  MEMO_OUT_OF_STEP: "memo_out_of_step",
  MEMO_BROKEN_TEXT: "memo_broken_text",
  MEMO_NOT_TEXT: "memo_not_text",
  READ_ONLY: "read_only",
});
