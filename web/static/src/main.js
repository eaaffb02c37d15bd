// Entry point: each page names itself in <body data-page> and gets its own start function.
import { startCallPage } from "./call.js";
import { startCardSettingsPage } from "./card.js";
import { startDocumentsPage } from "./documents.js";
import { startGuestPage } from "./guest.js";
import { startHostPage } from "./host.js";
import { startQuoteAnswerPage, startQuotePage } from "./quotes.js";
import { startRecordPage } from "./records.js";
import { startReplayPage } from "./replay.js";
import { startSitInPage } from "./sit-in.js";

// Shown by default for browsers that cannot run this module; hidden as soon as it runs.
document.querySelectorAll(".js-hide").forEach((node) => { node.hidden = true; });

const pages = {
  guest: startGuestPage,
  host: startHostPage,
  call: startCallPage,
  documents: startDocumentsPage,
  "card-settings": startCardSettingsPage,
  record: startRecordPage,
  "sit-in": startSitInPage,
  replay: startReplayPage,
  quote: startQuotePage,
  "quote-answer": startQuoteAnswerPage,
};

const start = pages[document.body.dataset.page];
if (start) start();
document.documentElement.dataset.ready = "1";
