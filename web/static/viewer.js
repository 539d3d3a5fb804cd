// The slice viewer of the evidence page: a key image opens its series; the mouse wheel and
// the arrow keys move through the slices, the window preset is chosen from a list. The
// server draws every slice (web/pages/images.py); this file only changes the image's URL.
(function () {
  "use strict";
  var viewer = document.getElementById("viewer");
  if (!viewer) { return; }
  var image = document.getElementById("viewer-image");
  var title = document.getElementById("viewer-title");
  var position = document.getElementById("viewer-position");
  var windowSelect = document.getElementById("viewer-window");
  var state = null;

  function show() {
    var url = state.slices.replace(/\/0\.png$/, "/" + state.k + ".png");
    var query = "?lesion=" + encodeURIComponent(state.lesion) +
      "&window=" + encodeURIComponent(windowSelect.value);
    image.src = url + query;
    image.alt = state.lesion + " at " + state.tp + ", slice " + (state.k + 1) + " of " + state.count;
    position.textContent = "slice " + (state.k + 1) + " / " + state.count +
      (state.k === state.measured ? " (measured slice)" : "");
  }

  function move(step) {
    if (!state) { return; }
    var k = Math.min(state.count - 1, Math.max(0, state.k + step));
    if (k !== state.k) { state.k = k; show(); }
  }

  document.querySelectorAll("a.key-image").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var measured = parseInt(link.dataset.slice, 10);
      state = {
        tp: link.dataset.tp, lesion: link.dataset.lesion, slices: link.dataset.slices,
        count: parseInt(link.dataset.count, 10) || 1, measured: measured, k: measured
      };
      title.textContent = "Series of " + state.tp + " · " + state.lesion;
      viewer.hidden = false;
      show();
      viewer.scrollIntoView({ block: "start" });
      image.focus();
    });
  });
  image.addEventListener("wheel", function (event) {
    event.preventDefault();
    move(event.deltaY > 0 ? 1 : -1);
  }, { passive: false });
  image.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown" || event.key === "ArrowRight") { event.preventDefault(); move(1); }
    if (event.key === "ArrowUp" || event.key === "ArrowLeft") { event.preventDefault(); move(-1); }
  });
  document.getElementById("viewer-prev").addEventListener("click", function () { move(-1); });
  document.getElementById("viewer-next").addEventListener("click", function () { move(1); });
  windowSelect.addEventListener("change", function () { if (state) { show(); } });
}());
