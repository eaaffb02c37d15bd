// Filled in by the memo feature; started by call.js with the room channel.
export function startMemo(_channel, _role) {}
