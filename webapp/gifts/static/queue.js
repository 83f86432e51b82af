// The labelling queue's hotkeys. Every action clicks the button or ticks the box a mouse user
// would, so htmx (or, without it, the plain form) does the rest and the server stays the judge.
//   1-9, 0, then a s d f ...   toggle the label showing that key
//   Enter                      accept the ticked labels and move on
//   x                          reject
//   Space                      skip (on a focused tick box: tick it, as usual)
//   Backspace or Ctrl+Z        undo the last decision
//   ?                          show / hide the key help (Escape closes it too)
(function () {
  "use strict";

  var busy = false; // a decision is on its way: keys wait for the next item

  // Keys never fire while one types: text inputs, selects, text areas, editable regions.
  function typing(element) {
    if (!element || !element.closest) { return false; }
    if (element.closest("select, textarea, [contenteditable='true']")) { return true; }
    var input = element.closest("input");
    return !!input && !/^(checkbox|radio|button|submit|reset)$/.test(input.type);
  }

  // A focused button or link keeps its own Enter / Space (keyboard users rely on it).
  function activatable(element) {
    return !!(element && element.closest && element.closest("button, a[href], summary"));
  }

  function click(id) {
    var button = document.getElementById(id);
    if (button && !button.disabled) { button.click(); return true; }
    return false;
  }

  // In a single-label group, ticking one label unticks the others (the server checks it too).
  function keepSingle(box) {
    if (!box.checked || !box.dataset.single) { return; }
    var form = box.form;
    form.querySelectorAll("input[data-group='" + box.dataset.group + "']").forEach(function (other) {
      if (other !== box) { other.checked = false; }
    });
  }

  function toggle(key) {
    var box = document.querySelector("#queue-form input[data-key='" + key + "']");
    if (!box) { return false; }
    box.checked = !box.checked;
    keepSingle(box);
    return true;
  }

  function help() { return document.getElementById("queue-help"); }

  function toggleHelp() {
    var dialog = help();
    if (!dialog) { return; }
    if (dialog.open) { dialog.close(); } else { dialog.showModal(); }
  }

  // What a key does on the current item; true when it did something.
  function perform(key, ctrl) {
    if (ctrl) { return (key === "z" || key === "Z") && click("queue-undo"); }
    if (key === "Enter") { return click("queue-accept"); }
    if (key === " ") { return click("queue-skip"); }
    if (key === "x" || key === "X") { return click("queue-reject"); }
    if (key === "Backspace") { return click("queue-undo"); }
    return key.length === 1 && toggle(key.toLowerCase());
  }

  // Keys pressed while a decision is on its way wait for the next item, in order (type-ahead),
  // so a fast labeller never loses a key nor acts on the item that is leaving.
  var waiting = [];
  var WAITING_MAX = 20;

  function onKey(event) {
    if (!document.getElementById("queue-item")) { return; }
    if (event.defaultPrevented || event.altKey || event.metaKey || event.isComposing) { return; }
    var dialog = help();
    if (dialog && dialog.open) {
      // The dialog handles Escape itself; "?" closes it too.
      if (event.key === "?") { event.preventDefault(); dialog.close(); }
      return;
    }
    if (typing(event.target)) { return; }
    if (event.key === "?") { toggleHelp(); event.preventDefault(); return; }
    var ctrl = event.ctrlKey;
    if (ctrl && event.key !== "z" && event.key !== "Z") { return; } // leave Ctrl+C etc. alone
    // A focused button or link keeps its own Enter and Space.
    if ((event.key === "Enter" || event.key === " ") && activatable(event.target)) { return; }
    // A focused tick box keeps Space to tick it, as everywhere else (Tab users rely on it).
    if (event.key === " " && event.target.type === "checkbox") { return; }
    if (busy) {
      if (event.key.length === 1 || ["Enter", "Backspace"].indexOf(event.key) >= 0) {
        event.preventDefault();
        // A held-down key repeats: act once, not once per repeat.
        if (!event.repeat && waiting.length < WAITING_MAX) { waiting.push([event.key, ctrl]); }
      }
      return;
    }
    if (event.repeat) { event.preventDefault(); return; } // holding x must not reject a run
    if (perform(event.key, ctrl)) { event.preventDefault(); }
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[data-single]")) { keepSingle(event.target); }
  });
  // Busy from a request until its answer is settled: htmx wires up the swapped-in form at
  // settle time, and a key pressed before that would post the bare form (a full page load).
  // One answer settles several elements (the item and the out-of-band blocks), so only the
  // first settle of the request in flight counts.
  var inFlight = null;
  function idle() {
    busy = false;
    while (!busy && waiting.length) {
      var next = waiting.shift();
      perform(next[0], next[1]);
    }
  }
  function done(event) {
    if (!inFlight || event.detail.xhr !== inFlight) { return; }
    inFlight = null;
    idle();
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    inFlight = event.detail.xhr;
    busy = true;
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.shouldSwap) { done(event); } // no swap, so no settle will come
  });
  document.addEventListener("htmx:afterSettle", done);
  ["htmx:sendError", "htmx:timeout", "htmx:sendAbort"].forEach(function (name) {
    document.addEventListener(name, done);
  });
  // After a new item arrives, focus its card so screen readers announce it and keys keep working.
  document.addEventListener("htmx:afterSettle", function (event) {
    var item = document.getElementById("queue-item");
    if (item && event.detail.target && event.detail.target.id === "queue-item") {
      item.setAttribute("tabindex", "-1");
      item.focus({ preventScroll: true });
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var open = document.getElementById("queue-help-open");
    if (open) {
      open.hidden = false; // the button needs this script, so it shows only with it
      open.addEventListener("click", toggleHelp);
    }
  });
}());
