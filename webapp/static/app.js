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

// Conditions on htmx triggers, sent as plain events. htmx compiles a trigger filter such as
// keyup[key=='Escape'] with Function(), which the Content Security Policy refuses (no
// 'unsafe-eval'; htmx-config sets allowEval to false), so templates listen for these instead:
//   curate:escape     Escape was released (keyup, as the filter was): an editing row cancels.
//   curate:row-click  a click not on a link nor inside .actions: a row opens its editor.
// Each bubbles up from the element the user acted on, so an element hears only its own.
function dispatchCurateEvent(target, name) {
  target.dispatchEvent(new CustomEvent(name, { bubbles: true }));
}
document.addEventListener("keyup", function (event) {
  if (event.key === "Escape") { dispatchCurateEvent(event.target, "curate:escape"); }
});
document.addEventListener("click", function (event) {
  if (!event.target.closest("a, .actions")) { dispatchCurateEvent(event.target, "curate:row-click"); }
});
