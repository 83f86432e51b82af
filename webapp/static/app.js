// Curate's small script: only what htmx does not do by itself.
// Move focus to the first invalid field after a form comes back with errors (422), so keyboard
// users land where they need to type. With outerHTML swaps the event's target is the element
// that was replaced, so look its successor up by id.
// Only when the user has not moved on: a slow answer must not pull the caret out of the field
// they are typing in now (their keystrokes would land in the invalid field instead).
var focusAtRequest = null;
document.addEventListener("htmx:beforeRequest", function () {
  focusAtRequest = document.activeElement && document.activeElement.id;
});
document.addEventListener("htmx:afterSettle", function (event) {
  var target = event.detail.target;
  var swapped = (target && target.id && document.getElementById(target.id)) || target;
  var invalid = swapped && swapped.querySelector("[aria-invalid='true']");
  var active = document.activeElement;
  var movedOn = active && active !== document.body && active.id !== focusAtRequest;
  if (invalid && !movedOn) { invalid.focus(); }
});
