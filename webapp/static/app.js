// Curate's small script: only what htmx does not do by itself.
// Move focus to the first invalid field after a form comes back with errors (422), so keyboard
// users land where they need to type. With outerHTML swaps the event's target is the element
// that was replaced, so look its successor up by id.
document.addEventListener("htmx:afterSettle", function (event) {
  var target = event.detail.target;
  var swapped = (target && target.id && document.getElementById(target.id)) || target;
  var invalid = swapped && swapped.querySelector("[aria-invalid='true']");
  if (invalid) { invalid.focus(); }
});
