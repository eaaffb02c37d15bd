// Filled in by the files feature; started by call.js with the room channel.
export function startFiles(_channel, _role) {}
