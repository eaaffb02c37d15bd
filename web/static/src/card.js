// Filled in by the card feature; started by call.js with the room channel.
export function startCard(_channel, _role) {}
