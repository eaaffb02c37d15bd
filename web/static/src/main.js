// Entry point: each page names itself in <body data-page> and gets its own start function.
import { startGuestPage } from "./guest.js";

const pages = {
  guest: startGuestPage,
};

const start = pages[document.body.dataset.page];
if (start) start();
document.documentElement.dataset.ready = "1";
